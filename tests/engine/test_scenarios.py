"""End to end, as a user would meet them: synthetic HRM runs written through the public
RunWriter with one pathology injected at a known step; `explain` must name the right category
soon after the onset with a fitting severity, and stay quiet (no warning) on healthy runs."""

import json

import numpy as np
import pytest
from engine_helpers import healthy

from hrm_doctor import synth
from hrm_doctor.cli import main

ONSET = 2000
# category, the latest step (after the onset) by which it must be found, acceptable severities
EXPECT = {
    "nonfinite": (0, {"critical"}),
    "explosion": (300, {"critical"}),
    "vanishing": (900, {"warning", "critical"}),
    "q_divergence": (700, {"warning", "critical"}),
    "halting_collapse": (300, {"warning", "critical"}),
    "sign_thrash": (300, {"warning", "critical"}),
    "loss_spike": (5, {"warning"}),
    "plateau": (1600, {"warning"}),
    "straggler": (200, {"warning", "critical"}),
}


def explain_json(run_dir, capsys, fail_on="never"):
    rc = main(["explain", "--run", str(run_dir), "--format", "json", "--fail-on", fail_on])
    return rc, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("pathology", sorted(EXPECT))
def test_each_pathology_is_found_soon_with_a_fitting_severity(pathology, tmp_path, capsys):
    ws = 4 if pathology == "straggler" else 1
    base = synth.healthy_run(4000, seed=77, world_size=ws)
    run = synth.inject(base, pathology, ONSET, seed=3)
    _, report = explain_json(synth.write_run(run, tmp_path / pathology), capsys)
    delay, severities = EXPECT[pathology]
    category = synth.EXPECTED_CATEGORY[pathology]
    hits = [
        f for f in report["findings"] if f["category"] == category and f["first_step"] >= ONSET - 5
    ]
    assert hits, f"{category} not found: {[f['id'] for f in report['findings']]}"
    first = min(hits, key=lambda f: f["first_step"])
    assert first["first_step"] - ONSET <= delay and first["severity"] in severities


@pytest.mark.parametrize("seed", [101, 102, 103])
def test_healthy_runs_get_no_warning(seed, tmp_path, capsys):
    run = healthy(5000, seed=seed, world_size=1 + (seed % 2))
    rc, report = explain_json(synth.write_run(run, tmp_path / "h"), capsys, fail_on="warning")
    assert rc == 0, [f["id"] for f in report["findings"] if f["severity"] != "info"]


def _frame_with(run, **changes):
    df = run.frame.copy()
    for name, fn in changes.items():
        df[name.replace("__", "/")] = fn(
            df["step"].to_numpy(), df[name.replace("__", "/")].to_numpy(np.float64)
        )
    return synth.SynthRun(run.config, run.meta, df, run.logged)


@pytest.mark.parametrize(
    ("name", "changes", "category", "severity"),
    [
        (
            "a sudden 100x jump of the gradient norm",
            {"grad__norm": lambda s, v: np.where(s >= ONSET, v * 100, v)},
            "explosion",
            "critical",
        ),
        (
            "a single-step 4x loss spike",
            {"train__lm_loss": lambda s, v: np.where(s == ONSET, v * 4, v)},
            "loss_spike",
            "warning",
        ),
        (
            "a mean Q logit drifting linearly to +60",
            {"act__q_continue__mean": lambda s, v: np.where(s >= ONSET, v + (s - ONSET) * 0.1, v)},
            "q_divergence",
            None,
        ),
        (
            "the gradient norm set to 1e-9",
            {"grad__norm__H": lambda s, v: np.where(s >= ONSET, 1e-9, v)},
            "vanishing",
            "warning",
        ),
        (
            "an infinite gradient norm",
            {"grad__norm": lambda s, v: np.where(s == ONSET, np.inf, v)},
            "nonfinite",
            "critical",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_other_shapes_of_the_same_pathologies(name, changes, category, severity, rule_set):
    from hrm_doctor.engine.engine import RuleEngine

    run = _frame_with(healthy(4000, seed=8), **changes)
    engine = RuleEngine(rule_set, run.config, run.meta)
    found = engine.feed(run.frame, run.logged) + engine.finish()
    hits = [f for f in found if f.category == category and f.first_step >= ONSET]
    assert hits, name
    first = min(hits, key=lambda f: f.first_step)
    assert first.first_step - ONSET <= 700 and (severity is None or first.severity == severity)
