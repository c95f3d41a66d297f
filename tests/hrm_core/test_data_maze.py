"""Maze: labels are the unique shortest S->G path (checked against a plain BFS and an exhaustive
path search), dihedral copies stay valid, builds are byte-identical under a seed."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

from hrm_core.data import MazeBuildOptions, PuzzleDataset, build_maze
from hrm_core.data.grids import NUM_DIHEDRAL, dihedral, inverse_dihedral
from hrm_core.data.maze import GOAL, OPEN, PATH, START, WALL, generate_maze
from hrm_doctor.errors import UserError

STEPS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def bfs_distance(walkable: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> int:
    """Plain BFS distance over walkable cells (-1 when unreachable)."""
    seen = {start: 0}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if (r, c) == goal:
            return seen[(r, c)]
        for dr, dc in STEPS:
            nxt = (r + dr, c + dc)
            inside = 0 <= nxt[0] < walkable.shape[0] and 0 <= nxt[1] < walkable.shape[1]
            if inside and walkable[nxt] and nxt not in seen:
                seen[nxt] = seen[(r, c)] + 1
                queue.append(nxt)
    return -1


def count_paths_of_length(walkable: np.ndarray, start, goal, length: int) -> int:
    """Simple paths of exactly `length` steps, by exhaustive depth-first search (small mazes)."""

    def walk(cell, visited, steps):
        if steps == length:
            return int(cell == goal)
        total = 0
        for dr, dc in STEPS:
            nxt = (cell[0] + dr, cell[1] + dc)
            inside = 0 <= nxt[0] < walkable.shape[0] and 0 <= nxt[1] < walkable.shape[1]
            if inside and walkable[nxt] and nxt not in visited:
                total += walk(nxt, visited | {nxt}, steps + 1)
        return total

    return walk(start, {start}, 0)


def check_maze(grid: np.ndarray, label: np.ndarray, min_path: int, exhaustive: bool) -> None:
    assert set(np.unique(grid)) <= {WALL, OPEN, START, GOAL}
    (start,) = [tuple(int(v) for v in p) for p in np.argwhere(grid == START)]
    (goal,) = [tuple(int(v) for v in p) for p in np.argwhere(grid == GOAL)]
    walkable = grid != WALL
    distance = bfs_distance(walkable, start, goal)
    path = label == PATH
    # the label is the input with the path cells marked, nothing else changed
    assert np.array_equal(np.where(path, OPEN, label), grid)
    assert distance >= min_path and int(path.sum()) == distance - 1
    # S -> path cells -> G is connected using only path cells: it is a shortest path
    on_path = path.copy()
    on_path[start] = on_path[goal] = True
    assert bfs_distance(on_path, start, goal) == distance
    if exhaustive:
        assert count_paths_of_length(walkable, start, goal, distance) == 1


@pytest.mark.parametrize("loops", [0.0, 0.3])
def test_labels_are_the_unique_shortest_path(loops):
    for index in range(12):
        rng = np.random.default_rng((7, index))
        grid, label = generate_maze(9, 8, loops, rng)
        assert grid.shape == (9, 9)
        check_maze(grid, label, 8, exhaustive=True)


def test_30x30_default_difficulty():
    rng = np.random.default_rng(0)
    grid, label = generate_maze(30, 112, 0.0, rng)
    check_maze(grid, label, 112, exhaustive=False)
    assert np.all(grid[0] == WALL) and np.all(grid[:, 0] == WALL)


def test_dihedral_transforms_are_distinct_and_invertible():
    grid = np.arange(16).reshape(4, 4)
    images = [dihedral(grid, t) for t in range(NUM_DIHEDRAL)]
    assert len({img.tobytes() for img in images}) == NUM_DIHEDRAL
    for t, image in enumerate(images):
        assert np.array_equal(dihedral(image, inverse_dihedral(t)), grid)
    assert np.array_equal(dihedral(grid, 6), grid.T)
    assert np.array_equal(dihedral(grid, 7), grid[::-1, ::-1].T)
    with pytest.raises(ValueError):
        dihedral(grid, 8)


def _build(tmp_path: Path, name: str, **options: object) -> Path:
    values = {"size": 9, "train_size": 6, "test_size": 3, "dihedral_aug": True, "seed": 0}
    values.update(options)
    out = tmp_path / name
    build_maze(MazeBuildOptions(**values), out)
    return out


def test_build_format_and_augmentation(tmp_path):
    out = _build(tmp_path, "m")
    train = PuzzleDataset.open(out, "train")
    meta = train.metadata
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers) == (6, 81, 1)
    data = train.sets["all"]
    assert np.array_equal(data.group_indices, np.arange(7) * 8)
    assert np.all(data.puzzle_identifiers == 0)
    for inputs, labels in zip(data.inputs, data.labels, strict=True):
        check_maze(inputs.reshape(9, 9), labels.reshape(9, 9), 10, exhaustive=True)
    first_group = {row.tobytes() for row in data.inputs[:8]}
    assert len(first_group) == 8  # the 8 dihedral copies differ
    test = PuzzleDataset.open(out, "test").sets["all"]
    assert test.num_groups == test.num_puzzles == 3


def test_build_is_byte_identical_under_a_seed(tmp_path):
    first, second = _build(tmp_path, "a"), _build(tmp_path, "b")
    other = _build(tmp_path, "c", seed=3)
    for path in sorted(p.relative_to(first) for p in first.rglob("*.npy")):
        assert (first / path).read_bytes() == (second / path).read_bytes()
    assert (first / "train/all__inputs.npy").read_bytes() != (
        other / "train/all__inputs.npy"
    ).read_bytes()


def test_impossible_path_length_is_refused():
    with pytest.raises(UserError, match="lower --min-path-length"):
        generate_maze(5, 50, 0.0, np.random.default_rng(0))


def test_hard_mazes_have_long_branching_paths(tmp_path, capsys):
    """Maze-Hard-like settings: shortest paths of at least the filter length, many branch
    points along them and dead ends; the statistics are printed at build time."""
    from hrm_core.data.__main__ import main
    from hrm_core.data.maze import maze_stats

    out = tmp_path / "hard"
    argv = ["build", "maze", "--out", str(out), "--quiet", "--size", "21", "--train-size", "6"]
    assert main([*argv, "--test-size", "0", "--branching", "0.3", "--loop-fraction", "0.05",
                 "--min-path-length", "50"]) == 0  # fmt: skip
    assert "train difficulty: 6 mazes, shortest path" in capsys.readouterr().out
    data = PuzzleDataset.open(out, "train").sets["all"]
    stats = [
        maze_stats(m.reshape(21, 21), p.reshape(21, 21)) for m, p in zip(data.inputs, data.labels)
    ]
    assert all(length >= 50 for length, _, _ in stats)
    assert sum(branches for _, _, branches in stats) / len(stats) >= 3
    assert sum(dead for _, dead, _ in stats) / len(stats) >= 5
