"""`hrm-train ... arch=trm`: the TRM smoke run learns and its doctor is quiet; a resumed TRM run
with an EMA continues exactly (the average is in the checkpoint, evaluation uses it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_core.trainer import checkpoint as ckpt
from hrm_doctor import RunReader, diagnose

from .conftest import HRM_TRAIN, run_command

TRM_LOSSES = ["train/lm_loss", "train/q_halt_loss"]


def test_a_resumed_trm_run_with_ema_logs_the_same_values(tmp_path, train, tiny_args):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    trm = ("arch=trm", "checkpoint_every=6")
    assert train(tiny_args(whole, "max_steps=20", *trm)) == 0
    assert train(tiny_args(parts, "max_steps=11", *trm)) == 0
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(parts)[-1][1], 0, torch.device("cpu"))
    assert set(state.optimizers["ema"]["shadow"]) == {
        n for n in state.model if not n.endswith(("weights", "_init"))
    }
    assert train(tiny_args(parts, "max_steps=20", *trm)) == 0
    a, b = RunReader(whole).scalars(), RunReader(parts).scalars()
    assert list(a["step"]) == list(b["step"]) == list(range(1, 21))
    for name in [*TRM_LOSSES, "grad/norm", "ema/param_dist", "state/y/delta_rms"]:
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)
    for name in ("eval/all/accuracy", "eval/all/lm_loss"):  # evaluated on the EMA weights
        np.testing.assert_array_equal(a[name].dropna(), b[name].dropna(), err_msg=name)
    assert "train/q_continue_loss" not in a and "state/z_H/rms" not in a


def test_evaluation_uses_the_moving_average(tmp_path, train, tiny_args):
    """ema_rate near 1 keeps the average at the initial weights: eval loss stays at its start
    while the live weights learn; the live weights are back for training after each eval."""
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    common = ("arch=trm", "max_steps=16")
    assert train(tiny_args(slow, *common, "ema_rate=0.999999")) == 0
    assert train(tiny_args(fast, *common, "ema=false")) == 0
    a, b = RunReader(slow).scalars(), RunReader(fast).scalars()
    np.testing.assert_array_equal(a["train/lm_loss"], b["train/lm_loss"])  # same training
    assert a["eval/all/lm_loss"].dropna().iloc[-1] > b["eval/all/lm_loss"].dropna().iloc[-1]


@pytest.mark.slow
def test_trm_smoke_learns_and_the_doctor_finds_it_healthy(tmp_path):
    run_dir = tmp_path / "run"
    args = [HRM_TRAIN, "experiment=smoke", "arch=trm", f"run_dir={run_dir}"]
    result = run_command([*args, f"data_path={tmp_path / 'data'}"], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    reader = RunReader(run_dir)
    df = reader.scalars()
    assert reader.config["arch"]["name"] == "trm" and reader.config["ema"] is True
    evals = df.dropna(subset=["eval/all/exact_accuracy"])
    assert evals["eval/all/exact_accuracy"].iloc[-1] > 0.8  # it solves 4x4 Sudoku
    assert df["train/steps"].dropna().iloc[-20:].mean() < 2  # and halting fires
    for name in ("state/y/rms", "state/z/delta_rms", "ema/param_dist", "grad/norm/L.1"):
        assert name in df, name
    report = diagnose(run_dir)
    assert report.status == "healthy", [f.id for f in report.findings]
    skipped = " ".join(n.message for n in report.notes)
    assert "grad/norm/H" in skipped and "q_continue" in skipped  # said once, as notes


# ---- sick TRM runs the doctor names (docs/trm.md, "Sick TRM runs") ------------------------------


@pytest.mark.parametrize(
    ("knob", "rule"),
    [
        ("ema_rate=0.99999", "trm-ema-too-slow"),
        ("ema=false", "trm-no-ema"),
        ("arch.no_ACT_continue=false", "trm-q-continue-on"),
    ],
)
def test_a_misconfigured_trm_run_is_named(tmp_path, train, tiny_args, knob, rule):
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "arch=trm", "max_steps=8", knob)) == 0
    assert rule in {f.rule for f in diagnose(run_dir).findings}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("knob", "rule"),
    [("weight_decay=100", "trm-answer-frozen"), ("lr=1e-2", "ema-lagging")],
)
def test_a_sick_trm_run_is_caught(tmp_path, train, tiny_args, knob, rule):
    """About 20 s each: 256 steps of the TRM smoke model on the tiny data."""
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "arch=trm", "epochs=64", "eval_interval=16", knob)) == 0
    found = {f.rule: f for f in diagnose(run_dir).findings}
    assert rule in found, sorted(found)
