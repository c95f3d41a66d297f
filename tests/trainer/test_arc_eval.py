"""ARC scored as in the paper, end to end: a tiny HRM trained on reference-arc-mini logs
eval/arc/pass@1 and pass@2 and writes the submission JSON; `hrm-train evaluate` scores a
checkpoint the same way (the reference's evaluate.py + arc_eval.ipynb)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "hrm_core"))
from hrm_core_helpers import reference_fixture  # noqa: E402

from hrm_doctor import RunReader  # noqa: E402

TINY_ARC = [
    "device=cpu",
    "forward_dtype=float32",
    "arch.hidden_size=16",
    "arch.num_heads=2",
    "arch.H_layers=1",
    "arch.L_layers=1",
    "arch.H_cycles=1",
    "arch.L_cycles=1",
    "arch.halt_max_steps=2",
    "arch.puzzle_emb_ndim=16",
    "global_batch_size=32",
    "epochs=1",
    "eval_interval=1",
    "eval_batch_size=40",
    "probe.enabled=false",
    "wandb.mode=disabled",
]


@pytest.fixture(scope="module")
def arc_run(tmp_path_factory) -> Path:
    from hrm_core.pretrain import main

    run_dir = tmp_path_factory.mktemp("arc") / "run"
    assert main([f"run_dir={run_dir}", f"data_path={reference_fixture()}", *TINY_ARC]) == 0
    return run_dir


def check_submission(path: Path) -> None:
    submission = json.loads(path.read_text())
    test_names = json.loads((reference_fixture() / "identifiers.json").read_text())
    tasks = {n for n in test_names[1:81] if "_" not in n}
    assert set(submission) == tasks and len(tasks) == 20
    for entries in submission.values():
        for entry in entries:
            assert sorted(entry) == ["attempt_1", "attempt_2"]
            for grid in entry.values():
                assert isinstance(grid, list) and all(isinstance(row, list) for row in grid)


def test_training_logs_arc_pass_at_k_and_writes_the_submission(arc_run):
    scalars = RunReader(arc_run).scalars()
    evaluated = scalars.dropna(subset=["eval/arc/pass@2"])
    assert len(evaluated) == 1
    row = evaluated.iloc[0]
    assert 0.0 <= row["eval/arc/pass@1"] <= row["eval/arc/pass@2"] <= 1.0
    assert row["eval/arc/tasks"] == 20
    assert row["eval/all/q_halt_loss"] > 0  # the reference's eval reports it too
    step = int(row["step"])
    check_submission(arc_run / "evaluations" / f"step_{step:08d}" / "arc_submission.json")


def test_evaluate_command_scores_a_checkpoint(arc_run, tmp_path, capsys):
    from hrm_core.pretrain import main

    out = tmp_path / "eval"
    argv = ["evaluate", f"checkpoint={arc_run}", f"data_path={reference_fixture()}"]
    assert main([*argv, f"out={out}", "eval_batch_size=16"]) == 0
    printed = capsys.readouterr().out
    assert "ARC pass@1" in printed and "over 20 tasks" in printed
    results = json.loads((out / "eval.json").read_text())
    logged = RunReader(arc_run).scalars().dropna(subset=["eval/arc/pass@2"]).iloc[0]
    for key in ("eval/arc/pass@1", "eval/arc/pass@2", "eval/all/exact_accuracy"):
        assert results[key] == pytest.approx(logged[key])  # same weights, same scores
    check_submission(out / "arc_submission.json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data_path=x"], "checkpoint= is required"),
        (["checkpoint"], "'checkpoint' is not key=value"),
        (["checkpoint=/nowhere"], "not a complete checkpoint nor a run directory"),
    ],
)
def test_evaluate_errors_are_one_line(argv, message, capsys):
    from hrm_core.pretrain import main

    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_refuses_data_the_checkpoint_does_not_fit(arc_run, tmp_path, capsys):
    from hrm_core.data import SudokuBuildOptions, ensure_dataset
    from hrm_core.pretrain import main

    data = ensure_dataset(tmp_path / "s", SudokuBuildOptions(box_size=2, train_size=8,
                                                              test_size=4, num_aug=0))  # fmt: skip
    assert main(["evaluate", f"checkpoint={arc_run}", f"data_path={data}"]) == 2
    assert "checkpoint does not fit" in capsys.readouterr().err
