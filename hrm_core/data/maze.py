"""The Maze dataset builder: seeded NxN mazes labelled with their unique BFS shortest path.

Tokens follow the reference charset "# SGo" shifted by one: pad 0, wall 1, open 2, start 3,
goal 4, path 5 (vocab 6; seq 900 for 30x30). A maze is carved by a randomised depth-first
search on the odd-coordinate lattice, optionally braided with extra openings (loops); start and
goal are placed so the shortest path is at least `min_path_length` steps long and unique, so
the label is well defined. One puzzle identifier; optional 8 dihedral copies per training maze.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hrm_core.data.grids import NUM_DIHEDRAL, dihedral
from hrm_core.data.maze_source import build_maze_source
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.writer import DatasetWriter, Vocabulary
from hrm_doctor.errors import UserError

WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
_SPLIT_CODES = {"train": 0, "test": 1}
_START_TRIES = 32
_MAZE_TRIES = 200


@dataclass(frozen=True)
class MazeBuildOptions:
    """Options of `python -m hrm_core.data build maze` (also the `data_build` config)."""

    kind: Literal["maze"] = "maze"
    size: int = field(default=30, metadata={"help": "grid side (30 in the reference)"})
    train_size: int = field(default=1000, metadata={"help": "training mazes (groups)"})
    test_size: int = field(default=1000, metadata={"help": "test mazes"})
    min_path_length: int | None = field(
        default=None, metadata={"help": "shortest allowed S->G path in steps (default size^2/8)"}
    )
    loop_fraction: float = field(
        default=0.0, metadata={"help": "fraction of remaining inner walls knocked out (loops)"}
    )
    branching: float = field(
        default=0.0,
        metadata={
            "help": "0: depth-first corridors (long paths, few dead ends); towards 1: more side "
            "branches and dead ends (growing-tree carving, 1 = Prim)"
        },
    )
    dihedral_aug: bool = field(default=False, metadata={"help": "add the 8 dihedral copies"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    source: str | None = field(
        default=None,
        metadata={
            "help": "directory with train.csv and test.csv of Maze-Hard (instead of generating)"
        },  # fmt: skip
    )
    subsample_size: int | None = field(
        default=None, metadata={"help": "with --source: training mazes drawn (default all)"}
    )

    def path_length(self) -> int:
        return self.size * self.size // 8 if self.min_path_length is None else self.min_path_length

    def __post_init__(self) -> None:
        if self.size < 5:
            raise ValueError(f"size must be >= 5, got {self.size}")
        if self.train_size < 1 or self.test_size < 0:
            raise ValueError("train_size must be >= 1 and test_size >= 0")
        if self.subsample_size is not None and self.subsample_size < 1:
            raise ValueError("subsample_size must be >= 1")
        if not 0.0 <= self.branching <= 1.0:
            raise ValueError(f"branching must be in [0, 1], got {self.branching}")
        if not 0.0 <= self.loop_fraction <= 1.0:
            raise ValueError(f"loop_fraction must be in [0, 1], got {self.loop_fraction}")


def _neighbours(r: int, c: int, cells: int) -> list[tuple[int, int]]:
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
    return [(r + a, c + b) for a, b in steps if 0 <= r + a < cells and 0 <= c + b < cells]


def carve_maze(
    size: int, loop_fraction: float, rng: np.random.Generator, branching: float = 0.0
) -> np.ndarray:
    """(size, size) bool grid, True = open: a spanning tree of the odd lattice plus loops.

    Growing-tree carving: extend the newest cell of the active list (depth-first), or with
    probability `branching` a random one (Prim-like side branches and dead ends).
    """
    cells = (size - 1) // 2
    is_open = np.zeros((size, size), dtype=bool)
    visited = np.zeros((cells, cells), dtype=bool)
    start = (int(rng.integers(cells)), int(rng.integers(cells)))
    visited[start] = True
    is_open[2 * start[0] + 1, 2 * start[1] + 1] = True
    active = [start]
    while active:
        k = len(active) - 1
        if branching > 0 and rng.random() < branching:
            k = int(rng.integers(len(active)))
        r, c = active[k]
        nexts = [n for n in _neighbours(r, c, cells) if not visited[n]]
        if not nexts:
            active.pop(k)
            continue
        nr, nc = nexts[int(rng.integers(len(nexts)))]
        visited[nr, nc] = True
        is_open[r + nr + 1, c + nc + 1] = True  # the wall between the two cells
        is_open[2 * nr + 1, 2 * nc + 1] = True
        active.append((nr, nc))
    if loop_fraction > 0:
        inner = np.zeros_like(is_open)
        inner[1 : 2 * cells, 1 : 2 * cells] = True
        lattice_wall = inner & ~is_open & ((np.indices(is_open.shape).sum(axis=0) % 2) == 1)
        knock = lattice_wall & (rng.random(is_open.shape) < loop_fraction)
        is_open |= knock
    return is_open


def shortest_paths(is_open: np.ndarray, start: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """BFS from `start`: (distance, -1 where unreachable; number of shortest paths, capped at 2)."""
    size = is_open.shape[0]
    dist = np.full(is_open.shape, -1, dtype=np.int64)
    ways = np.zeros(is_open.shape, dtype=np.int64)
    dist[start], ways[start] = 0, 1
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < size and 0 <= nc < size and is_open[nr, nc]:
                if dist[nr, nc] < 0:
                    dist[nr, nc] = dist[r, c] + 1
                    queue.append((nr, nc))
                if dist[nr, nc] == dist[r, c] + 1:
                    ways[nr, nc] = min(2, ways[nr, nc] + ways[r, c])
    return dist, ways


def generate_maze(
    size: int, min_path: int, loops: float, rng: np.random.Generator, branching: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """One (input, label) pair of (size, size) token grids with a unique shortest S->G path."""
    for _ in range(_MAZE_TRIES):
        is_open = carve_maze(size, loops, rng, branching)
        open_cells = np.argwhere(is_open)
        for _ in range(_START_TRIES):
            start = tuple(int(v) for v in open_cells[rng.integers(len(open_cells))])
            dist, ways = shortest_paths(is_open, start)
            goals = np.argwhere((dist >= max(min_path, 1)) & (ways == 1))
            if len(goals):
                goal = tuple(int(v) for v in goals[rng.integers(len(goals))])
                return _render(is_open, dist, start, goal)
    raise UserError(
        f"maze build: no {size}x{size} maze with a unique shortest path of >= {min_path} steps "
        f"in {_MAZE_TRIES} tries; lower --min-path-length or --loop-fraction"
    )


def _render(
    is_open: np.ndarray, dist: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    grid = np.where(is_open, OPEN, WALL).astype(np.uint8)
    grid[start], grid[goal] = START, GOAL
    label = grid.copy()
    r, c = goal
    while dist[r, c] > 1:  # walk back along strictly decreasing distance (the path is unique)
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if (
                0 <= nr < grid.shape[0]
                and 0 <= nc < grid.shape[1]
                and dist[nr, nc] == dist[r, c] - 1
            ):
                r, c = nr, nc
                break
        label[r, c] = PATH
    return grid, label


def build_maze(options: MazeBuildOptions, out_dir: Path, progress: Progress = SILENT) -> None:
    """Generate the train and test splits into `out_dir` in the reference format (or read them
    from the CSV files of `options.source`)."""
    if options.source is not None:
        build_maze_source(options, out_dir, progress)
        return
    size = options.size
    writer = DatasetWriter(out_dir, Vocabulary(vocab_size=6, seq_len=size * size))
    report: dict[str, list[str]] = {}
    for split, count in (("train", options.train_size), ("test", options.test_size)):
        set_writer = writer.open_set(split)
        transforms = range(NUM_DIHEDRAL) if options.dihedral_aug and split == "train" else [0]
        stats = []
        for index in progress.track(range(count), count, f"maze {size}x{size} {split}"):
            rng = np.random.default_rng((options.seed, _SPLIT_CODES[split], index))
            grid, label = generate_maze(
                size, options.path_length(), options.loop_fraction, rng, options.branching
            )
            stats.append(maze_stats(grid, label))
            inputs = np.stack([dihedral(grid, t).ravel() for t in transforms])
            labels = np.stack([dihedral(label, t).ravel() for t in transforms])
            set_writer.add_group([0] * len(transforms), inputs, labels, [1] * len(transforms))
        report[split] = stats_lines(stats, f"{split} difficulty")
    writer.close(["<blank>"], {"builder": asdict(options), "difficulty": report})


def maze_stats(grid: np.ndarray, label: np.ndarray) -> tuple[int, int, int]:
    """(shortest path length in steps, dead ends, branch points on the path) of one maze."""
    is_open = grid != WALL
    padded = np.pad(is_open, 1).astype(np.int8)
    degree = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) * is_open
    on_path = (label == PATH) | (label == START) | (label == GOAL)
    dead_ends = int(np.sum(is_open & (degree == 1) & (grid == OPEN)))
    return int(on_path.sum()) - 1, dead_ends, int(np.sum(on_path & (degree >= 3)))


def stats_lines(stats: list[tuple[int, int, int]], title: str) -> list[str]:
    """Path lengths, dead ends and branch points of a set, as printed at build time."""
    if not stats:
        return [f"{title}: no mazes"]
    lengths = np.array([s[0] for s in stats])
    edges = [0, 50, 80, 110, 150, 200, 300, 10**6]
    counts = np.histogram(lengths, bins=edges)[0]
    names = [f"{a}-{b - 1}" if b < 10**6 else f"{a}+" for a, b in zip(edges, edges[1:])]
    return [
        f"{title}: {len(stats)} mazes, shortest path {lengths.min()}-{lengths.max()} steps "
        f"(mean {lengths.mean():.0f}, {np.mean(lengths > 110):.0%} over 110), dead ends mean "
        f"{np.mean([s[1] for s in stats]):.0f}, branch points on the path mean "
        f"{np.mean([s[2] for s in stats]):.1f}",
        "  path length: " + " ".join(f"{n}:{c}" for n, c in zip(names, counts, strict=True)),
    ]
