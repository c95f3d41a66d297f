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
