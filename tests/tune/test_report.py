"""The report of a study: best healthy trials, pruned trials with their findings, the ready
command, and an HTML file with the Optuna figures (a study built by hand: no training)."""

from __future__ import annotations

import optuna
import pytest

from hrm_doctor.cli import main
from hrm_doctor.tune.report import best_command, healthy_best, text_report
from hrm_doctor.tune.storage import open_storage, resolve_storage

FINDING = {
    "id": "nonfinite-value@37", "rule": "nonfinite-value", "pack": "core",
    "category": "nonfinite", "severity": "critical", "first_step": 37, "last_step": 37,
    "rank": None, "metric": "train/lm_loss", "message": "the loss is NaN", "evidence": {},
    "suggestion": None,
}  # fmt: skip


def _study(storage) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.set_user_attr("command", ["hrm-train", "experiment=smoke", "run_dir=x", "max_steps=9"])
    study.set_user_attr("metric", "eval/all/accuracy")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-5, 100, log=True)}

    def add(lr, state, value=None, **attrs):
        t = optuna.trial.create_trial(
            params={"lr": lr}, distributions=dist, state=state, value=value,
            user_attrs={"overrides": [f"lr={lr:.6g}"], **attrs},
            intermediate_values={16: value or 0.25},
        )  # fmt: skip
        study.add_trial(t)

    complete = optuna.trial.TrialState.COMPLETE
    add(3e-3, complete, 0.61, steps_run=64, health="healthy")
    add(1e-3, complete, 0.55, steps_run=64, health="warning")
    add(3e-2, complete, 0.80, steps_run=64, health="critical")  # sick: never "best healthy"
    add(10.0, optuna.trial.TrialState.PRUNED, steps_run=4, finding=FINDING, pruned_by="doctor")
    return study


def test_the_text_report_ranks_healthy_trials_and_explains_pruned_ones():
    study = _study(optuna.storages.InMemoryStorage())
    assert [t.number for t in healthy_best(study)] == [0, 1]
    text = text_report(study, "memory")
    assert "4 trials: 3 complete, 1 pruned, 0 failed" in text
    assert "steps run: 196 in all, 4 by pruned trials" in text
    assert "nonfinite-value@37" in text and "critical/nonfinite" in text
    assert best_command(study, healthy_best(study)[0]) == "hrm-train experiment=smoke lr=0.003"
    assert text.rstrip().endswith("hrm-train experiment=smoke lr=0.003")


def test_report_command_prints_and_writes_html(tmp_path, capsys):
    _study(open_storage(resolve_storage(None, tmp_path), heartbeat=False))
    assert main(["tune", "--report", "s", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best healthy trials:" in out and "pruned trials" in out
    html = (tmp_path / "report.html").read_text()
    assert "Pruned trials" in html and "nonfinite-value@37" in html
    assert "Optimisation history" in html and "plotly" in html.lower()


@pytest.mark.parametrize("name", ["missing"])
def test_report_names_the_studies_there(tmp_path, capsys, name):
    _study(open_storage(resolve_storage(None, tmp_path), heartbeat=False))
    assert main(["tune", "--report", name, "--root", str(tmp_path)]) == 2
    assert "no study named 'missing' (there: s)" in capsys.readouterr().err
