"""Small pieces of the trainer: the flat gradient buffer, the logged means, W&B, the host sync,
the torchrun environment check, the console."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hrm_core.probe import metrics_to_host
from hrm_core.trainer.console import Console, format_metrics
from hrm_core.trainer.distributed import set_cpu_threads, torchrun_problems
from hrm_core.trainer.gradients import FlatGradients
from hrm_core.trainer.steplog import train_means
from hrm_core.trainer.wandb_logger import WandbLogger, effective_mode


def test_flat_gradients_are_views_that_backward_fills():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    reference = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    reference.load_state_dict(model.state_dict())
    grads = FlatGradients(model.parameters())
    x = torch.randn(5, 4)
    for _ in range(2):  # accumulation works too
        model(x).square().sum().backward()
        reference(x).square().sum().backward()
    grads.check_views()
    expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(grads.flat, expected)
    torch.testing.assert_close(grads.norm(), expected.norm())
    grads.clip_(1.0, grads.norm())
    assert grads.norm().item() == pytest.approx(1.0, rel=1e-4)
    assert grads.nonfinite_count().item() == 0
    grads.flat[3] = float("nan")
    grads.flat[4] = float("inf")
    assert grads.nonfinite_count().item() == 2
    grads.zero_()
    assert all(p.grad.abs().sum() == 0 for p in model.parameters())


def test_train_means_follow_the_documented_denominators():
    sums = dict(
        count=4.0, accuracy=3.0, exact_accuracy=2.0, q_halt_accuracy=1.0, steps=12.0,
        lm_loss=32.0, q_halt_loss=8.0, q_continue_loss=16.0, nonfinite=0.0,
    )  # fmt: skip
    means = train_means(sums, batch_size=16)
    assert means["train/lm_loss"] == 2.0 and means["train/q_continue_loss"] == 1.0
    assert means["train/accuracy"] == 0.75 and means["train/steps"] == 3.0
    assert means["train/count"] == 4.0 and means["nonfinite/count"] == 0.0
    none_halted = train_means(dict(sums, count=0.0), batch_size=16)
    assert "train/accuracy" not in none_halted and none_halted["train/count"] == 0.0


def test_metrics_to_host_is_one_batched_transfer():
    host = metrics_to_host(
        {"a": torch.tensor(1.5), "b": torch.tensor([1, 2, 3]), "c": 7, "d": torch.tensor(True)}
    )
    assert host["a"] == 1.5 and host["c"] == 7 and host["d"] == 1.0
    np.testing.assert_array_equal(host["b"], np.array([1, 2, 3], dtype=np.float32))
    assert list(host) == ["a", "b", "c", "d"]


def test_wandb_disabled_never_imports_wandb(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # an import would raise ImportError
    logger = WandbLogger("disabled", "p", None, tmp_path, {}, run_id=None, active=True)
    assert not logger.enabled
    logger.log({"train/lm_loss": 1.0}, step=1)
    logger.set_num_params(3)
    logger.close()
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the environment wins over the config
    assert effective_mode("offline") == "disabled"
    assert not WandbLogger("offline", "p", None, tmp_path, {}, run_id=None, active=True).enabled
    monkeypatch.delenv("WANDB_MODE")
    assert effective_mode("offline") == "offline"
    # Ranks other than 0 never log.
    assert not WandbLogger("offline", "p", None, tmp_path, {}, run_id=None, active=False).enabled


def test_wandb_logs_scalars_only():
    logged = []

    class FakeRun:
        def log(self, data, step):
            logged.append((data, step))

    logger = WandbLogger("disabled", "p", None, ".", {}, run_id=None, active=False)
    logger.run = FakeRun()
    logger.log({"train/lm_loss": 1.0, "act/halt_steps": np.ones(3), "train/count": 3}, step=5)
    assert logged == [({"train/lm_loss": 1.0, "train/count": 3}, 5)]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, None),
        ({"RANK": "0"}, "RANK set but WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing"),
        (
            {
                "RANK": "2",
                "WORLD_SIZE": "2",
                "LOCAL_RANK": "0",
                "MASTER_ADDR": "h",
                "MASTER_PORT": "1",
            },
            "RANK=2 is not in [0, WORLD_SIZE=2)",
        ),
        (
            {
                "RANK": "x",
                "WORLD_SIZE": "2",
                "LOCAL_RANK": "0",
                "MASTER_ADDR": "h",
                "MASTER_PORT": "1",
            },
            "non-integer",
        ),
    ],
)
def test_torchrun_environment_problems(env, problem):
    problems = torchrun_problems(env)
    assert (problems == []) if problem is None else (problem in problems[0])


def test_cpu_threads_default_to_omp_or_cores_per_local_rank(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_cpu_threads(None, 2) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
        assert set_cpu_threads(None, 2) == 3  # 8 cores / 2 ranks, less one
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
        assert set_cpu_threads(None, 1) == 1
        assert set_cpu_threads(3, 2) == 3
    finally:
        torch.set_num_threads(before)


def test_console_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    console = Console(True, total_steps=10, stream=stream)
    console.update(1, {"train/lm_loss": 1.5, "train/lr": 1e-3, "nonfinite/count": 0.0})
    console.update(2, {"train/lm_loss": 1.4})  # within 5 s of the last line: not printed
    console.note("eval at step 2")
    console.update(10, {"train/lm_loss": 1.0, "nonfinite/count": 3.0})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "step 1/10  lm_loss 1.5000  lr 1.00e-03"
    assert lines[1] == "eval at step 2"
    assert lines[2].startswith("step 10/10  lm_loss 1.0000  NONFINITE 3")
    assert "NONFINITE" not in format_metrics({"nonfinite/count": 0.0})
    silent = io.StringIO()
    Console(False, 10, stream=silent).update(1, {"train/lm_loss": 1.0})
    assert silent.getvalue() == ""
