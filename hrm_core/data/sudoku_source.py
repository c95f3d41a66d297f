"""Sudoku-Extreme (and Sudoku-Hard) from their CSV files, as the reference builder writes them.

`build sudoku --source DIR` reads `DIR/train.csv` and `DIR/test.csv` (csv_source), keeps rows
rated >= `min_difficulty`, draws `subsample_size` training puzzles, and adds `num_aug` shuffles
of each (digit permutation, transpose, band/row and stack/column permutations). Random draws
follow the reference's order on numpy's legacy generator seeded with `seed`: with the same
files, the same arrays as the reference run after `np.random.seed(seed)`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from hrm_core.data.csv_source import as_grids, read_puzzles, split_file, subsample
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.sudoku_rating import Rating, histogram_lines
from hrm_core.data.writer import DatasetWriter, Vocabulary

if TYPE_CHECKING:
    from pathlib import Path

    from hrm_core.data.sudoku import SudokuBuildOptions

SIDE = 9
DIGITS = "0123456789"


def reference_shuffle(
    puzzle: np.ndarray, solution: np.ndarray, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """One validity-preserving shuffle of a 9x9 (puzzle, solution), the reference's draws."""
    digit_map = np.pad(rng.permutation(np.arange(1, 10)), (1, 0))  # blank (0) stays blank
    transpose = rng.rand() < 0.5
    bands = rng.permutation(3)
    rows = np.concatenate([b * 3 + rng.permutation(3) for b in bands])
    stacks = rng.permutation(3)
    cols = np.concatenate([s * 3 + rng.permutation(3) for s in stacks])

    def apply(grid: np.ndarray) -> np.ndarray:
        oriented = grid.T if transpose else grid
        return digit_map[oriented[rows][:, cols]]

    return apply(puzzle), apply(solution)


def build_sudoku_source(
    options: SudokuBuildOptions, out_dir: Path, progress: Progress = SILENT
) -> None:
    """Write the train and test splits of the CSV source into `out_dir`."""
    assert options.source is not None
    rng = np.random.RandomState(options.seed)
    writer = DatasetWriter(out_dir, Vocabulary(vocab_size=11, seq_len=SIDE * SIDE))
    report: dict[str, list[str]] = {}
    for split in ("train", "test"):
        rows = read_puzzles(
            split_file(options.source, split),
            DIGITS,
            cells=SIDE * SIDE,
            min_rating=options.min_difficulty,
            blank=".",
        )
        puzzles = as_grids(rows.questions, SIDE) - ord("0")
        solutions = as_grids(rows.answers, SIDE) - ord("0")
        keep = np.arange(len(puzzles))
        augments = 0
        if split == "train":
            keep = subsample(len(puzzles), options.subsample_size, rng)
            augments = options.num_aug
        set_writer = writer.open_set(split)
        report[split] = histogram_lines(
            [Rating(_as_int(rows.ratings[i]), int(np.count_nonzero(puzzles[i]))) for i in keep],
            f"{split} difficulty (the CSV's rating column)",
        )
        for index in progress.track(keep, len(keep), f"sudoku {split} ({rows.path.name})"):
            pairs = [(puzzles[index], solutions[index])]
            pairs += [reference_shuffle(*pairs[0], rng) for _ in range(augments)]
            inputs = np.stack([p.ravel() for p, _ in pairs]).astype(np.uint8) + 1
            labels = np.stack([s.ravel() for _, s in pairs]).astype(np.uint8) + 1
            set_writer.add_group([0] * len(pairs), inputs, labels, [1] * len(pairs))
    writer.close(["<blank>"], {"builder": asdict(options), "difficulty": report})


def _as_int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0
