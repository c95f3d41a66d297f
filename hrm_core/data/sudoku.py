"""The Sudoku dataset builder: seeded unique-solution puzzles plus the reference augmentations.

Tokens follow the reference: pad 0, blank 1, digits 2..n+1 (vocab 11 and seq 81 for 9x9; vocab
6 and seq 16 for the 4x4 variant). Every puzzle shares puzzle identifier 0 (one identifier).
A training group is one generated puzzle and its `num_aug` shuffles (digit permutation,
transpose, band/row and stack/column permutations), so an epoch sees each puzzle once.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.sudoku_rating import Rating, histogram_lines, minimal_puzzle, rate
from hrm_core.data.sudoku_solver import make_puzzle, random_solution
from hrm_core.data.sudoku_source import build_sudoku_source
from hrm_core.data.writer import DatasetWriter, Vocabulary
from hrm_doctor.errors import UserError

_DEFAULT_GIVENS = {2: (4, 8), 3: (17, 30)}
MAX_TRIES = 2000
"""Minimal puzzles drawn per wanted puzzle before a --difficulty is declared out of reach."""
_SPLIT_CODES = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SudokuBuildOptions:
    """Options of `python -m hrm_core.data build sudoku` (also the `data_build` config)."""

    kind: Literal["sudoku"] = "sudoku"
    box_size: int = field(default=3, metadata={"help": "box side: 3 for 9x9 Sudoku, 2 for 4x4"})
    train_size: int = field(default=1000, metadata={"help": "generated training puzzles (groups)"})
    test_size: int = field(default=1000, metadata={"help": "generated test puzzles"})
    num_aug: int = field(default=1000, metadata={"help": "augmented copies per training puzzle"})
    min_givens: int | None = field(
        default=None, metadata={"help": "fewest clues to aim for (default 17 for 9x9, 4 for 4x4)"}
    )
    max_givens: int | None = field(
        default=None, metadata={"help": "most clues (default 30 for 9x9, 8 for 4x4)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    difficulty: int | None = field(
        default=None,
        metadata={
            "help": "minimal puzzles needing at least this many backtracks of a plain solver "
            "(0: any minimal puzzle; 1: none solvable by elimination alone); the givens range "
            "filters them (default: the givens range is the only target)"
        },
    )
    source: str | None = field(
        default=None,
        metadata={
            "help": "directory with train.csv and test.csv of Sudoku-Extreme or Sudoku-Hard "
            "(instead of generating)"
        },
    )
    subsample_size: int | None = field(
        default=None, metadata={"help": "with --source: training puzzles drawn (default all)"}
    )
    min_difficulty: int | None = field(
        default=None, metadata={"help": "with --source: keep rows rated at least this"}
    )

    def givens_range(self) -> tuple[int, int]:
        """The clue-count range each puzzle's target is drawn from."""
        low, high = _DEFAULT_GIVENS.get(self.box_size, (0, self.box_size**4))
        low = low if self.min_givens is None else self.min_givens
        high = high if self.max_givens is None else self.max_givens
        return low, high

    def __post_init__(self) -> None:
        if self.box_size not in (2, 3, 4):
            raise ValueError(f"box_size must be 2, 3 or 4, got {self.box_size}")
        if self.train_size < 1 or self.test_size < 0 or self.num_aug < 0:
            raise ValueError("train_size must be >= 1; test_size and num_aug >= 0")
        if self.source is not None and self.box_size != 3:
            raise ValueError("source puzzles are 9x9: box_size must be 3 with source")
        if self.subsample_size is not None and self.subsample_size < 1:
            raise ValueError("subsample_size must be >= 1")
        if self.difficulty is not None and self.difficulty < 0:
            raise ValueError("difficulty must be >= 0")
        low, high = self.givens_range()
        if not 0 <= low <= high <= self.box_size**4:
            raise ValueError(f"need 0 <= min_givens <= max_givens <= cells, got {low}..{high}")


def generate_puzzle(
    box: int, givens: tuple[int, int], rng: np.random.Generator, difficulty: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One (puzzle, solution) pair as (n, n) arrays of raw digits (0 = blank).

    With `difficulty`: a minimal puzzle with at least that many backtracks and a clue count in
    `givens` (rejection sampling, MAX_TRIES draws); else clues removed down to a target count.
    """
    n = box * box
    py_rng = random.Random(int(rng.integers(2**63)))
    if difficulty is not None:
        for _ in range(MAX_TRIES):
            solution = random_solution(box, py_rng)
            puzzle = minimal_puzzle(solution, box, py_rng)
            rating = rate(puzzle, box)
            if rating.backtracks >= difficulty and givens[0] <= rating.clues <= givens[1]:
                break
        else:
            raise UserError(
                f"sudoku build: no minimal puzzle with >= {difficulty} backtracks and "
                f"{givens[0]}-{givens[1]} clues in {MAX_TRIES} tries; lower --difficulty"
            )
    else:
        target = int(rng.integers(givens[0], givens[1] + 1))
        solution = random_solution(box, py_rng)
        puzzle = make_puzzle(solution, box, target, py_rng)
    return np.asarray(puzzle, dtype=np.uint8).reshape(n, n), np.asarray(
        solution, dtype=np.uint8
    ).reshape(n, n)


def _permuted_rows(box: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, n) row orders that keep bands intact: bands shuffled, rows shuffled in each band."""
    bands = rng.permuted(np.tile(np.arange(box), (count, 1)), axis=1)
    inner = rng.permuted(np.tile(np.arange(box), (count * box, 1)), axis=1).reshape(count, box, box)
    return (bands[:, :, None] * box + inner).reshape(count, box * box)


def augment_sudoku(
    puzzle: np.ndarray, solution: np.ndarray, box: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` validity-preserving shuffles of a (puzzle, solution) pair: (count, n, n) each.

    The same digit map, transpose and row/column orders apply to the puzzle and its solution.
    """
    n = box * box
    digit_maps = np.zeros((count, n + 1), dtype=np.uint8)  # blank (0) stays blank
    digit_maps[:, 1:] = rng.permuted(
        np.tile(np.arange(1, n + 1, dtype=np.uint8), (count, 1)), axis=1
    )
    transpose = rng.random(count) < 0.5
    rows, cols = _permuted_rows(box, count, rng), _permuted_rows(box, count, rng)
    take = (np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :])
    out = []
    for grid in (puzzle, solution):
        oriented = np.where(transpose[:, None, None], grid.T[None], grid[None])  # (count, n, n)
        shuffled = oriented[take].reshape(count, n * n)
        out.append(
            np.take_along_axis(digit_maps, shuffled.astype(np.int64), axis=1).reshape(count, n, n)
        )
    return out[0], out[1]


def build_sudoku(options: SudokuBuildOptions, out_dir: Path, progress: Progress = SILENT) -> None:
    """Generate the train and test splits into `out_dir` in the reference format (or read them
    from the CSV files of `options.source`)."""
    if options.source is not None:
        build_sudoku_source(options, out_dir, progress)
        return
    box, n = options.box_size, options.box_size**2
    writer = DatasetWriter(out_dir, Vocabulary(vocab_size=n + 2, seq_len=n * n))
    report: dict[str, list[str]] = {}
    for split, size in (("train", options.train_size), ("test", options.test_size)):
        set_writer = writer.open_set(split)
        augments = options.num_aug if split == "train" else 0
        ratings: list[Rating] = []
        for index in progress.track(range(size), size, f"sudoku {n}x{n} {split}"):
            rng = np.random.default_rng((options.seed, _SPLIT_CODES[split], index))
            puzzle, solution = generate_puzzle(box, options.givens_range(), rng, options.difficulty)
            if options.difficulty is not None:
                ratings.append(rate(puzzle.ravel().tolist(), box))
            aug_p, aug_s = augment_sudoku(puzzle, solution, box, augments, rng)
            inputs = np.concatenate([puzzle[None], aug_p]).reshape(-1, n * n) + 1
            labels = np.concatenate([solution[None], aug_s]).reshape(-1, n * n) + 1
            set_writer.add_group([0] * (1 + augments), inputs, labels, [1] * (1 + augments))
        if ratings:
            report[split] = histogram_lines(ratings, f"{split} difficulty")
    writer.close(["<blank>"], {"builder": asdict(options), "difficulty": report})
