"""Runs every built-in rule unit test (rules/tests/*.yaml), in one pass and in chunks, and
checks that every built-in rule has a test that makes it fire and one that keeps it quiet on
healthy synthetic runs."""

from __future__ import annotations

import pytest

from hrm_doctor.engine.packs import load_rule_set
from hrm_doctor.ruletest import builtin_test_sources, load_test_file, run_case

SOURCES = builtin_test_sources()
CASES = [
    (source, parsed, case)
    for source, text in SOURCES
    for parsed in [load_test_file(text, source)]
    for case in parsed.tests
]


@pytest.fixture(scope="module")
def rule_set():
    return load_rule_set()


@pytest.mark.parametrize(
    ("source", "parsed", "case"), CASES, ids=[f"{s}::{c.name}" for s, _, c in CASES]
)
def test_rule_unit_test(rule_set, source, parsed, case):
    results = run_case(rule_set, parsed.config, case, source)
    problems = [f"{r.name}: {p}" for r in results for p in r.problems]
    assert not problems, "\n".join(problems)
    if case.synthetic is None:
        # The same verdicts when the rows arrive in chunks (as `watch` feeds them).
        chunked = run_case(rule_set, parsed.config, case, source, chunks=[7, 100, 101, 333, 1000])
        assert [f.to_json() for r in chunked for f in r.findings] == [
            f.to_json() for r in results for f in r.findings
        ]


def test_every_builtin_rule_fires_in_a_test_and_is_quiet_on_healthy_runs(rule_set):
    fired, quiet = set(), set()
    for _, _, case in CASES:
        fired |= {e.rule for e in case.expect if e.rule}
        if case.synthetic is not None and not case.expect:
            quiet |= (
                set(r.spec.id for r in rule_set.rules) if case.rules == "all" else set(case.rules)
            )
    ids = {r.spec.id for r in rule_set.rules}
    assert ids - fired == set(), "rules without a test that makes them fire"
    time_or_config = {
        r.spec.id for r in rule_set.rules if r.spec.detector.type in ("config", "stall")
    }
    assert ids - quiet - time_or_config == set(), "rules without a healthy-run silence test"
