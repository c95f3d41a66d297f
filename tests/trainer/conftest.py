"""Shared fixtures of the trainer tests: a tiny dataset built once, the entry point in-process
and as a real command, and a reader of what the run wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from smoke_helpers import TINY_BUILD, tiny_dataset

# One intra-op thread: tiny tensors on a shared 2-core machine (see tests/hrm_core/conftest.py).
torch.set_num_threads(1)

VENV_BIN = Path(sys.executable).parent
HRM_TRAIN = shutil.which("hrm-train", path=str(VENV_BIN)) or "hrm-train"
TORCHRUN = shutil.which("torchrun", path=str(VENV_BIN)) or "torchrun"

# The tiny dataset (tests/smoke_helpers.py): with epochs=16 and eval_interval=2 a pass (then an
# evaluation) is 8 steps; the schedule is 64.


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # our bugs: full tracebacks in test output
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("data") / "sudoku4-tiny")


@pytest.fixture
def tiny_args(tiny_data: Path) -> Callable[..., list[str]]:
    """argv for a tiny run in `run_dir`, plus extra overrides."""

    def make(run_dir: Path, *extra: str) -> list[str]:
        return [
            "experiment=smoke",
            f"run_dir={run_dir}",
            f"data_path={tiny_data}",
            *(f"data_build.{k}={v}" for k, v in TINY_BUILD.items()),
            "epochs=16",
            "eval_interval=2",
            *extra,
        ]

    return make


@pytest.fixture
def train() -> Callable[[list[str]], int]:
    """The real entry point, in this process (what `hrm-train ARGV` runs)."""
    from hrm_core.pretrain import main

    return main


def command_env() -> dict[str, str]:
    """The environment of a real command: W&B off, one thread, this venv's scripts first."""
    return {
        **os.environ,
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run_command(args: list[str], timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    env = command_env()
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False, **kwargs
    )
