"""Foreign runs for the interop tests, written once per session by subprocesses (writers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WRITERS = Path(__file__).with_name("writers.py")
BAD_STEP = 30


def write_foreign_run(kind: str, out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.Popen(
        [sys.executable, str(WRITERS), kind, str(out), str(steps), str(BAD_STEP), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _written(kind: str, out: Path, steps: int) -> Path:
    p = write_foreign_run(kind, out, steps)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()[-2000:]
    return out


@pytest.fixture(scope="session")
def wandb_run(tmp_path_factory) -> Path:
    """An offline W&B run of the reference names: 100 steps, train/lm_loss NaN at step 30."""
    root = _written("wandb", tmp_path_factory.mktemp("wandb"), 100)
    return root / "wandb" / "latest-run"


@pytest.fixture(scope="session")
def tb_logdir(tmp_path_factory) -> Path:
    """A TensorBoard logdir written by torch's SummaryWriter, same metrics and NaN."""
    return _written("tensorboard", tmp_path_factory.mktemp("tb") / "logs", 100)
