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

from .slurm_cluster import SlurmCluster, missing_programs

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
# 256 training puzzles in batches of 64: 4 steps an epoch; epochs=16, eval_interval=4 -> an
# eval every 16 steps, 64 steps in all
TINY_BUILD = {"train_size": 256, "test_size": 64}


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
    from hrm_core.data import SudokuBuildOptions, ensure_dataset

    path = tmp_path_factory.mktemp("data") / "sudoku4-tiny"
    options = SudokuBuildOptions(box_size=2, num_aug=0, seed=0, **TINY_BUILD)
    return ensure_dataset(path, options)


def smoke_command(data: Path) -> list[str]:
    return [
        "hrm-train",
        "experiment=smoke",
        f"data_path={data}",
        *(f"data_build.{k}={v}" for k, v in TINY_BUILD.items()),
        "epochs=16",
        "eval_interval=4",
        "probe.enabled=false",
    ]
