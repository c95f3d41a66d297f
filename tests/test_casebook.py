"""A CI-sized subset of the casebook (bench/casebook.py): real `hrm-train` runs made sick by one
knob must be caught with the right category from their own telemetry, and the cure of a run
blown up by a high lr without warmup must leave it near a healthy run of the same seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _casebook():
    spec = importlib.util.spec_from_file_location("casebook", REPO / "bench" / "casebook.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["casebook"] = module
    spec.loader.exec_module(module)
    return module


casebook = _casebook()
CI_CASES = [c for c in casebook.CASES if c.ci]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("casebook")
    return casebook.Casebook(root, root / "img", seed=0, timeout=600)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("case", CI_CASES, ids=[c.name for c in CI_CASES])
def test_a_sick_run_is_caught_and_its_cure_leaves_it_near_a_healthy_run(book, case):
    heal = case.heal and case.name == "lr-no-warmup"  # one cure in CI: the casebook has the rest
    out = book.run_case(case, heal=heal)
    assert out.manifest, (
        f"{case.name} did not make the run sick: {out.sick_acc} vs {out.healthy_acc}"
    )
    assert out.caught, f"{case.name}: expected {case.expect}, the doctor said {out.first_findings}"
    assert out.found["category"] in case.expect and out.found["severity"] != "info"
    assert out.picture and Path(out.picture).is_file()
    if heal:
        assert out.healed, (out.healthy_acc, out.cured_acc, out.cure)
        assert out.cure["critical_left"] == []


def test_shards_run_side_by_side_combine_into_one_casebook(tmp_path):
    """`--combine` merges shards' JSON files: every case once (a later shard wins), healthy runs
    keyed by preset, ranks and seed, the door checks kept, recall over the sick cases only."""

    def outcome(name, *, caught, manifest, healed=None):
        o = casebook.Outcome(name, "experiment=smoke", "k=v", ["explosion"], caught=caught,
                             manifest=manifest, healed=healed)  # fmt: skip
        return casebook.asdict(o)

    def healthy(preset, seed, ranks=1):
        return {"preset": preset, "ranks": ranks, "seed": seed, "final_eval_accuracy": 0.7,
                "warnings_or_worse": [], "infos": []}  # fmt: skip

    meta = {"when": "2026-12-03", "machine": "2 CPUs", "minutes": 10.0}
    a = {"meta": meta, "door": [],
         "cases": [outcome("lr-no-warmup", caught=False, manifest=True),
                   outcome("no-exploration", caught=False, manifest=False)],
         "healthy": [healthy("experiment=smoke", 0)]}  # fmt: skip
    b = {"meta": meta,
         "door": [{"case": "puzzle-ids-out-of-range", "exit_code": 2, "seconds": 3.0,
                   "message": "hrm-train: error: x.npy: value 1 outside", "refused": True}],
         "cases": [outcome("lr-no-warmup", caught=True, manifest=True, healed=True),
                   outcome("slow-rank", caught=True, manifest=True)],
         "healthy": [healthy("experiment=smoke", 0, ranks=2)]}  # fmt: skip
    (tmp_path / "a.json").write_text(casebook.json.dumps(a))
    (tmp_path / "b.json").write_text(casebook.json.dumps(b))
    out, md = tmp_path / "all.json", tmp_path / "casebook.md"
    assert casebook.combine([tmp_path / "a.json", tmp_path / "b.json"], out, md) == 0
    result = casebook.json.loads(out.read_text())
    assert [c["case"] for c in result["cases"]] == ["lr-no-warmup", "no-exploration", "slow-rank"]
    assert result["cases"][0]["caught"] and result["meta"]["minutes"] == 20.0
    assert [(h["preset"], h["ranks"]) for h in result["healthy"]] == [
        ("experiment=smoke", 1), ("experiment=smoke", 2)]  # fmt: skip
    text = md.read_text()
    assert "**Recall: 2/2**" in text and "**Heal rate: 1/1**" in text
    assert "| slow-rank | experiment=smoke (2 ranks) |" in text
    assert "| puzzle-ids-out-of-range | 2 |" in text
