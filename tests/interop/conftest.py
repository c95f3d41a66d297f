"""Foreign runs for the interop tests, written once per session by subprocesses (writers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from interop_helpers import _written


@pytest.fixture(scope="session")
def wandb_run(tmp_path_factory) -> Path:
    """An offline W&B run of the reference names: 100 steps, train/lm_loss NaN at step 30."""
    root = _written("wandb", tmp_path_factory.mktemp("wandb"), 100)
    return root / "wandb" / "latest-run"


@pytest.fixture(scope="session")
def wandb_trm_run(tmp_path_factory) -> Path:
    """An offline W&B run of the reference TRM trainer's names and config (Sudoku recipe,
    ema off): 100 steps, train/lm_loss NaN at step 30."""
    root = _written("wandb-trm", tmp_path_factory.mktemp("wandb-trm"), 100)
    return root / "wandb" / "latest-run"


@pytest.fixture(scope="session")
def tb_logdir(tmp_path_factory) -> Path:
    """A TensorBoard logdir written by torch's SummaryWriter, same metrics and NaN."""
    return _written("tensorboard", tmp_path_factory.mktemp("tb") / "logs", 100)
