"""Sudoku: the generator makes valid, uniquely solvable puzzles; augmentations keep them so;
builds are byte-identical under a seed and follow the reference format (one identifier)."""

from __future__ import annotations

import itertools
import json
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_core.data import PuzzleDataset, SudokuBuildOptions, build_sudoku
from hrm_core.data.sudoku import augment_sudoku, generate_puzzle
from hrm_core.data.sudoku_solver import count_solutions, solve

ARRAYS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


def is_valid_solution(grid: np.ndarray, box: int) -> bool:
    """Every row, column and box holds each digit 1..n once (the slow, obvious check)."""
    n = box * box
    digits = set(range(1, n + 1))
    rows = [set(row) for row in grid.tolist()]
    cols = [set(col) for col in grid.T.tolist()]
    boxes = [
        set(grid[r : r + box, c : c + box].ravel().tolist())
        for r in range(0, n, box)
        for c in range(0, n, box)
    ]
    return all(group == digits for group in rows + cols + boxes)


@cache
def all_4x4_solutions() -> tuple[np.ndarray, ...]:
    """Every valid 4x4 Sudoku grid (288 of them), by brute force over row permutations."""
    perms = list(itertools.permutations(range(1, 5)))
    grids: list[np.ndarray] = []

    def extend(rows: list[tuple[int, ...]]) -> None:
        if len(rows) == 4:
            grid = np.array(rows)
            if is_valid_solution(grid, 2):
                grids.append(grid)
            return
        for row in perms:  # prune on columns only; the full check above does the boxes
            if all(row[c] != prev[c] for prev in rows for c in range(4)):
                extend([*rows, row])

    extend([])
    return tuple(grids)


def brute_force_solutions(puzzle: np.ndarray) -> list[np.ndarray]:
    """4x4 solutions consistent with the givens, by checking all 288 grids."""
    givens = puzzle > 0
    return [g for g in all_4x4_solutions() if np.array_equal(g[givens], puzzle[givens])]


def test_there_are_288_4x4_grids():
    assert len(all_4x4_solutions()) == 288


def test_4x4_puzzles_have_one_solution_equal_to_the_label():
    for index in range(60):
        rng = np.random.default_rng((5, index))
        puzzle, solution = generate_puzzle(2, (4, 8), rng)
        (only,) = brute_force_solutions(puzzle)
        assert np.array_equal(only, solution)
        assert 4 <= int((puzzle > 0).sum()) <= 16
        assert count_solutions(puzzle.ravel().tolist(), 2) == 1


def test_9x9_puzzles_are_unique_and_labelled_with_their_solution():
    for index in range(3):
        rng = np.random.default_rng((1, index))
        puzzle, solution = generate_puzzle(3, (17, 30), rng)
        assert is_valid_solution(solution, 3)
        assert np.array_equal(puzzle[puzzle > 0], solution[puzzle > 0])
        assert count_solutions(puzzle.ravel().tolist(), 3) == 1
        assert solve(puzzle.ravel().tolist(), 3) == solution.ravel().tolist()
        assert 17 <= int((puzzle > 0).sum()) <= 30


def test_solver_counts_and_rejects():
    empty = [0] * 16
    assert count_solutions(empty, 2, limit=1000) == 288
    clash = [1, 1] + [0] * 14
    assert count_solutions(clash, 2) == 0
    assert solve(clash, 2) is None
    assert solve(empty, 2, random.Random(0)) is not None


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), box=st.sampled_from([2, 3]))
def test_augmentation_preserves_validity(seed, box):
    rng = np.random.default_rng(seed)
    solution = all_4x4_solutions()[seed % 288] if box == 2 else _fixed_9x9()
    puzzle = np.where(rng.random(solution.shape) < 0.5, solution, 0)
    aug_p, aug_s = augment_sudoku(puzzle, solution, box, 4, rng)
    for p, s in zip(aug_p, aug_s, strict=True):
        assert is_valid_solution(s, box)
        assert np.array_equal(p[p > 0], s[p > 0])
        assert int((p > 0).sum()) == int((puzzle > 0).sum())


@cache
def _fixed_9x9() -> np.ndarray:
    return np.asarray(solve([0] * 81, 3), dtype=np.int64).reshape(9, 9)


def test_augmented_4x4_puzzles_stay_unique():
    rng = np.random.default_rng(3)
    puzzle, solution = generate_puzzle(2, (4, 6), rng)
    aug_p, aug_s = augment_sudoku(puzzle, solution, 2, 16, rng)
    for p, s in zip(aug_p, aug_s, strict=True):
        (only,) = brute_force_solutions(p)
        assert np.array_equal(only, s)


def _build(tmp_path: Path, name: str, **options: object) -> Path:
    values = {"box_size": 2, "train_size": 12, "test_size": 5, "num_aug": 3, "seed": 0}
    values.update(options)
    out = tmp_path / name
    build_sudoku(SudokuBuildOptions(**values), out)
    return out


def test_build_is_byte_identical_under_a_seed(tmp_path):
    first, second = _build(tmp_path, "a"), _build(tmp_path, "b")
    other = _build(tmp_path, "c", seed=1)
    for split in ("train", "test"):
        for field in ARRAYS:
            name = f"{split}/all__{field}.npy"
            assert (first / name).read_bytes() == (second / name).read_bytes()
        assert (first / split / "dataset.json").read_bytes() == (
            second / split / "dataset.json"
        ).read_bytes()
    assert (first / "train/all__inputs.npy").read_bytes() != (
        other / "train/all__inputs.npy"
    ).read_bytes()


def test_build_follows_the_reference_format(tmp_path):
    out = _build(tmp_path, "s")
    assert json.loads((out / "identifiers.json").read_text()) == ["<blank>"]
    train = PuzzleDataset.open(out, "train")
    meta = train.metadata
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers) == (6, 16, 1)
    assert (meta.pad_id, meta.ignore_label_id, meta.blank_identifier_id) == (0, 0, 0)
    assert (meta.total_groups, meta.mean_puzzle_examples, meta.sets) == (12, 1.0, ("all",))
    data = train.sets["all"]
    assert data.inputs.dtype == np.uint8 and data.puzzle_indices.dtype == np.int32
    assert np.all(data.puzzle_identifiers == 0)
    assert np.array_equal(data.group_indices, np.arange(13) * 4)  # original + 3 augmentations
    assert set(np.unique(data.inputs)) <= set(range(1, 6)) and np.all(data.labels >= 2)
    for inputs, labels in zip(data.inputs, data.labels, strict=True):
        puzzle, solution = inputs.reshape(4, 4) - 1, labels.reshape(4, 4) - 1
        (only,) = brute_force_solutions(puzzle)
        assert np.array_equal(only, solution)
    test = PuzzleDataset.open(out, "test")
    assert test.sets["all"].num_groups == test.sets["all"].num_puzzles == 5


@pytest.mark.parametrize(
    "bad", [{"box_size": 5}, {"train_size": 0}, {"min_givens": 9, "max_givens": 3}]
)
def test_options_reject_nonsense(bad):
    with pytest.raises(ValueError):
        SudokuBuildOptions(**bad)


def test_difficulty_gives_minimal_puzzles_that_need_backtracking(tmp_path, capsys):
    """--difficulty 1: minimal puzzles (no clue can go), none solvable by elimination alone;
    uniqueness checked by the plain solver, and the histogram printed at build time."""
    from hrm_core.data.__main__ import main
    from hrm_core.data.sudoku_rating import rate

    out = tmp_path / "hard"
    argv = ["build", "sudoku", "--out", str(out), "--quiet", "--train-size", "4"]
    assert main([*argv, "--test-size", "2", "--num-aug", "1", "--difficulty", "1",
                 "--max-givens", "25"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "train difficulty: 4 puzzles" in printed and "0% solvable by elimination" in printed
    data = PuzzleDataset.open(out, "train").sets["all"]
    for puzzle in data.inputs[::2]:  # the originals (each followed by one shuffle)
        grid = [int(v) - 1 for v in puzzle]
        assert count_solutions(grid, 3) == 1
        assert 17 <= sum(1 for v in grid if v) <= 25
        assert rate(grid, 3).backtracks >= 1
        for cell in (i for i, v in enumerate(grid) if v):  # minimal: every clue is needed
            assert count_solutions([0 if i == cell else v for i, v in enumerate(grid)], 3) == 2


def test_rating_counts_backtracks_of_known_puzzles():
    from hrm_core.data.sudoku_rating import rate

    easy = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
    escargot = "1....7.9..3..2...8..96..5....53..9...1..8...26....4...3......1..4......7..7...3.."
    as_grid = lambda text: [0 if ch == "." else int(ch) for ch in text]  # noqa: E731
    assert rate(as_grid(easy)).backtracks == 0  # singles alone solve it
    assert rate(as_grid(escargot)).backtracks >= 3  # "AI Escargot" needs guessing
