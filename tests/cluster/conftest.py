"""The test Slurm cluster (started once for the module that needs it, stopped after it), the
environment every Slurm job of the tests gets, and a tiny smoke dataset."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from smoke_helpers import tiny_dataset

from .slurm_cluster import SlurmCluster, missing_programs

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    missing = missing_programs()
    if missing:
        pytest.skip(
            f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm"
        )
    base = Path(tempfile.mkdtemp(prefix="hrm-slurm-"))  # short: socket paths have a limit
    cluster = SlurmCluster(base)
    # Every job gets this environment explicitly (nothing from the shell that ran pytest but
    # what is named here): this checkout's code, the venv's programs, quiet and single-threaded.
    cluster.env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{cluster.env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        WANDB_MODE="disabled",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("data") / "sudoku4-tiny")
