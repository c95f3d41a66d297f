"""Real studies on the smoke experiment: the doctor prunes the trials that blow up (finding on
the trial), the best trial is healthy and learns; workers share one study through SQLite and
through a real PostgreSQL server."""

from __future__ import annotations

import subprocess

import optuna
import pytest

from hrm_doctor.cli import main
from hrm_doctor.tune.storage import open_storage, resolve_storage

from .conftest import HRM_DOCTOR, worker_env

pytestmark = pytest.mark.slow


def _load(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))


def test_a_study_with_absurd_learning_rates_prunes_them_and_keeps_a_healthy_best(
    tmp_path, smoke_command, capsys
):
    # lr=10 is absurd from the config (pruned at once); puzzle_emb_lr=1000 (the two rates
    # swapped by mistake) blows up at run time: non-finite gradients some steps in
    space = tmp_path / "space.yaml"
    space.write_text("lr: {choice: [3.0e-3, 10.0]}\npuzzle_emb_lr: {choice: [1.0e-2, 1000.0]}\n")
    root = tmp_path / "study"
    argv = ["tune", "--trials", "4", "--sampler", "grid", "--space", str(space),
            "--metric", "eval/all/accuracy", "--study", "lrs", "--root", str(root),
            "--", *smoke_command]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out

    study = _load(resolve_storage(None, root), "lrs")
    trials = {(t.params["lr"], t.params["puzzle_emb_lr"]): t for t in study.trials}
    assert len(trials) == 4
    for key in ((10.0, 1e-2), (10.0, 1000.0), (3e-3, 1000.0)):  # blew up: pruned, early
        t = trials[key]
        assert t.state == optuna.trial.TrialState.PRUNED, key
        f = t.user_attrs["finding"]  # the finding that pruned it, as DESIGN.md writes it
        assert f["severity"] == "critical" and f["id"] == f"{f['rule']}@{f['first_step']}"
        assert {"category", "message", "evidence", "suggestion", "first_step"} <= set(f)
        assert f["first_step"] <= t.user_attrs["steps_run"] < 64  # stopped well before the end
        assert (root / f"trial-{t.number:04d}" / "findings.jsonl").is_file()
    assert trials[(10.0, 1e-2)].user_attrs["finding"]["category"] == "config"
    # an embedding lr of 1000 is refused from the config (emb-lr-absurd, critical) before the
    # rows overflow at runtime
    assert trials[(3e-3, 1000.0)].user_attrs["finding"]["rule"] == "emb-lr-absurd"
    best = study.best_trial
    assert best.params == {"lr": 3e-3, "puzzle_emb_lr": 1e-2}
    assert best.user_attrs["health"] != "critical" and best.user_attrs["steps_run"] == 64
    assert best.value > 0.30  # 4x4 Sudoku cells: chance is 0.25
    assert sorted(best.intermediate_values) == [16, 32, 48, 64]  # reported at each eval
    assert out.count("pruned at step") == 3 and "best trial as a command:" in out
    assert "hrm-train experiment=smoke" in out and "lr=0.003 puzzle_emb_lr=0.01" in out


def _workers(storage_args: list[str], roots: list, smoke_command) -> list:
    """One `hrm-doctor tune` process per root, all at once, on one study; their outputs."""
    procs = []
    for root in roots:
        argv = [HRM_DOCTOR, "tune", "--trials", "4", "--budget-steps", "6", "--sampler", "random",
                "--metric", "train/lm_loss", "--study", "shared", "--root", str(root),
                *storage_args, "--", *smoke_command]  # fmt: skip
        procs.append(
            subprocess.Popen(
                argv, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    return [(p.communicate(timeout=240)[0], p.returncode) for p in procs]


def _check_shared(study: optuna.Study, outs) -> None:
    for stdout, code in outs:
        assert code == 0, stdout
    trials = study.trials
    assert 4 <= len(trials) <= 5  # --trials is the study's total (one extra if both raced)
    states = [t.state for t in trials]
    assert all(s == optuna.trial.TrialState.COMPLETE for s in states), states
    assert len({t.user_attrs["run_dir"] for t in trials}) == len(trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert all(t.user_attrs["steps_run"] == 6 for t in trials)  # --budget-steps


def test_two_workers_share_one_sqlite_study(tmp_path, smoke_command):
    root = tmp_path / "shared"
    outs = _workers([], [root, root], smoke_command)
    _check_shared(_load(resolve_storage(None, root), "shared"), outs)


def test_two_workers_share_one_postgresql_study(tmp_path, smoke_command, postgres_url, capsys):
    # each worker has its own root, as on two machines; the study lives in the server
    outs = _workers(["--storage", postgres_url], [tmp_path / "a", tmp_path / "b"], smoke_command)
    _check_shared(_load(postgres_url, "shared"), outs)
    argv = ["tune", "--report", "shared", "--storage", postgres_url, "--root", str(tmp_path)]
    assert main(argv) == 0
    assert "complete, 0 pruned, 0 failed" in capsys.readouterr().out


def test_an_eval_metric_no_trial_can_reach_stops_the_study_with_one_line(
    tmp_path, smoke_command, capsys
):
    argv = ["tune", "--trials", "3", "--budget-steps", "5", "--root", str(tmp_path),
            "--", *smoke_command]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the first eval is at step 16, after the budget of 5 steps" in err
    assert err.count("\n") == 1
    assert len(_load(resolve_storage(None, tmp_path), "smoke").trials) == 1  # not three
