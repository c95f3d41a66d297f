"""Rule state in bounded memory gives the findings of the full-history engine (issue 15).

`golden_findings.json` holds what the engine found, evidence included, before its state was
bounded (tests/engine/golden.py wrote it from that engine): every built-in scenario, healthy
runs of each task and every rule test. The bounded engine must find exactly that, fed in one
pass, in random chunks, and through the streaming reader in small chunks.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from golden import GOLDEN, canonical, rule_test_findings, run_scenario, scenarios

from hrm_doctor import synth
from hrm_doctor.diagnosis import diagnose

GOLD = json.loads(GOLDEN.read_text())
SCENARIOS = dict(scenarios())


def _json(obj):
    return json.loads(canonical(obj))


GOLD = _json(GOLD)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_any_chunking_gives_the_full_history_findings(name, rule_set):
    run = SCENARIOS[name]()
    n = len(run.frame)
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same cuts every time
    cuts = sorted(set(rng.integers(1, n, size=int(rng.integers(1, 40))).tolist()))
    assert _json(run_scenario(rule_set, run, cuts)) == GOLD["scenarios"][name]


def test_rule_tests_in_chunks_give_the_full_history_findings():
    assert _json(rule_test_findings(chunks=[37, 400, 401, 1999])) == GOLD["rule_tests"]


@pytest.mark.parametrize("name", ["mixed", "straggler/seed0", "explosion/seed1"])
def test_streaming_diagnosis_in_small_chunks_reports_the_same(name, tmp_path, rule_set):
    """Through the files: RunWriter -> the chunked reader -> the engine (as `explain` does)."""
    run_dir = synth.write_run(SCENARIOS[name](), tmp_path / "run")
    report = diagnose(run_dir, rule_set, chunk_rows=777)
    got = _json([f.to_json() for f in report.findings])
    want = GOLD["scenarios"][name]["report"]

    # written through RunWriter the values are float32: compare what does not depend on that
    def key(fs):
        return sorted((f["id"], f["category"], f["severity"], f["rank"], f["metric"]) for f in fs)

    assert key(got) == key(want)


def test_a_detector_keeps_its_window_not_the_run(rule_set):
    """After a long run has streamed past, each detector holds O(window) samples."""
    from hrm_doctor.engine.engine import RuleEngine

    run = SCENARIOS["healthy/sudoku/seed101/ws1"]()
    engine = RuleEngine(rule_set, run.config, run.meta)
    for a in range(0, len(run.frame), 500):
        engine.feed(run.frame.iloc[a : a + 500].reset_index(drop=True), run.logged[a : a + 500])
    for rule in engine.rules:
        for series in rule.series.values():
            det = series.detector
            assert det._last is None and not det.scratch  # nothing of the last update kept
            assert len(det._tail_s) <= max(det.lookback, 16)
            assert det._tail_v.base is None  # a copy: not a view that pins a whole chunk
