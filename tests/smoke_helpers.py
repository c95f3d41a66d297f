"""The tiny smoke run shared by the trainer, tune and cluster tests: 4x4 Sudoku with 256
training puzzles (4 batches of 64 an epoch), built once per session or module, and the
`hrm-train` command over it (epochs=16, eval_interval=4: an evaluation every 16 steps, 64
steps in all, a few seconds on one core)."""

from __future__ import annotations

from pathlib import Path

TINY_BUILD = {"train_size": 256, "test_size": 64}


def tiny_dataset(path: Path) -> Path:
    from hrm_core.data import SudokuBuildOptions, ensure_dataset

    return ensure_dataset(path, SudokuBuildOptions(box_size=2, num_aug=0, seed=0, **TINY_BUILD))


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
