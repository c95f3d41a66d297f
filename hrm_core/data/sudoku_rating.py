"""Sudoku difficulty as Sudoku-Extreme measures it: the backtracking work of a plain solver.

The solver propagates naked singles (a cell with one candidate) and hidden singles (a digit with
one place in a row, column or box), then guesses on a cell with the fewest candidates, digits in
order. A puzzle's rating is the number of guesses that led to a dead end before the solution was
found (backtracks, the measure Sudoku-Extreme's rating column counts with tdoku); 0 means it is
solvable by elimination alone. `minimal_puzzle` removes clues until none can go without losing
uniqueness, as hard published sets are (17-25 clues for 9x9).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache


@cache
def _units(box: int) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """(units: rows, columns, boxes as cell tuples; peers of each cell)."""
    n = box * box
    rows = [tuple(r * n + c for c in range(n)) for r in range(n)]
    cols = [tuple(r * n + c for r in range(n)) for c in range(n)]
    boxes = [
        tuple((br * box + r) * n + bc * box + c for r in range(box) for c in range(box))
        for br in range(box)
        for bc in range(box)
    ]
    units = tuple(rows + cols + boxes)
    peers = tuple(
        tuple(sorted({p for u in units if i in u for p in u} - {i})) for i in range(n * n)
    )
    return units, peers


class _Search:
    """Candidate bitmasks per cell; counts solutions up to a limit and the dead ends met."""

    def __init__(self, box: int, limit: int) -> None:
        self.n = box * box
        self.units, self.peers = _units(box)
        self.limit = limit
        self.solutions: list[list[int]] = []
        self.backtracks = 0

    def start(self, grid: Sequence[int]) -> list[int] | None:
        """Candidates after placing the clues and propagating; None on a contradiction."""
        full = (1 << self.n) - 1
        cand = [full] * (self.n * self.n)
        stack = [(i, 1 << (int(v) - 1)) for i, v in enumerate(grid) if v]
        return cand if self._propagate(cand, stack) else None

    def _assign(self, cand: list[int], i: int, bit: int) -> bool:
        """Fix cell i to `bit` and propagate singles; False on a contradiction."""
        return bool(cand[i] & bit) and self._propagate(cand, [(i, bit)])

    def _propagate(self, cand: list[int], stack: list[tuple[int, int]]) -> bool:
        """Naked singles, then every hidden single at once, until nothing changes."""
        full = (1 << self.n) - 1
        while stack:
            while stack:
                cell, b = stack.pop()
                if not cand[cell] & b:
                    return False
                cand[cell] = b
                for p in self.peers[cell]:
                    m = cand[p]
                    if m & b:
                        m &= ~b
                        cand[p] = m
                        if not m:
                            return False
                        if m & (m - 1) == 0:
                            stack.append((p, m))
            for unit in self.units:  # digits with one place left in a unit
                once = twice = 0
                for c in unit:
                    m = cand[c]
                    twice |= once & m
                    once |= m
                if once != full:
                    return False
                single = once & ~twice
                if single:
                    for c in unit:
                        m = cand[c] & single
                        if m and cand[c] != m:
                            if m & (m - 1):
                                return False  # two digits need this one cell
                            stack.append((c, m))
        return True

    def search(self, cand: list[int]) -> bool:
        """Depth-first from `cand`; True once `limit` solutions are found."""
        best, best_count = -1, self.n + 1
        for i, m in enumerate(cand):
            count = m.bit_count()
            if 1 < count < best_count:
                best, best_count = i, count
                if count == 2:
                    break
        if best < 0:  # every cell fixed: a solution
            self.solutions.append([m.bit_length() for m in cand])
            return len(self.solutions) >= self.limit
        for d in range(self.n):
            bit = 1 << d
            if not cand[best] & bit:
                continue
            trial = list(cand)
            found = len(self.solutions)
            if self._assign(trial, best, bit):
                if self.search(trial):
                    return True
                if len(self.solutions) > found:
                    continue
            if not self.solutions:  # a guess that died before the first solution
                self.backtracks += 1
        return False


@dataclass(frozen=True)
class Rating:
    """How hard a puzzle is for the plain solver."""

    backtracks: int
    """Guesses that led to a dead end before the first solution (0: elimination alone)."""
    clues: int


def rate(puzzle: Sequence[int], box: int = 3) -> Rating:
    """The rating of a puzzle (flat, 0 = blank) with at least one solution."""
    search = _Search(box, limit=1)
    cand = search.start(puzzle)
    if cand is None:
        raise ValueError("the puzzle contradicts itself")
    search.search(cand)
    if not search.solutions:
        raise ValueError("the puzzle has no solution")
    return Rating(search.backtracks, sum(1 for v in puzzle if v))


def count_solutions_fast(puzzle: Sequence[int], box: int = 3, limit: int = 2) -> int:
    """Solutions of `puzzle` counted up to `limit`, with singles propagation (hard puzzles)."""
    search = _Search(box, limit)
    cand = search.start(puzzle)
    if cand is None:
        return 0
    search.search(cand)
    return len(search.solutions)


def minimal_puzzle(solution: Sequence[int], box: int, rng: random.Random) -> list[int]:
    """Clues of `solution` removed in random order while the puzzle stays unique, until no
    clue can be removed: a minimal puzzle."""
    puzzle = list(solution)
    order = list(range(len(puzzle)))
    rng.shuffle(order)
    for cell in order:
        value, puzzle[cell] = puzzle[cell], 0
        if count_solutions_fast(puzzle, box, limit=2) != 1:
            puzzle[cell] = value
    return puzzle


def histogram_lines(ratings: Sequence[Rating], title: str) -> list[str]:
    """Clue counts and backtrack counts of a set, as printed at build time."""
    if not ratings:
        return [f"{title}: no puzzles"]
    clues: dict[int, int] = {}
    for r in ratings:
        clues[r.clues] = clues.get(r.clues, 0) + 1
    buckets = [(0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 10**9)]
    counts = [sum(lo <= r.backtracks <= hi for r in ratings) for lo, hi in buckets]
    names = [
        f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+") for lo, hi in buckets
    ]
    total = len(ratings)
    mean = sum(r.backtracks for r in ratings) / total
    return [
        f"{title}: {total} puzzles, clues {min(clues)}-{max(clues)} "
        f"(mean {sum(r.clues for r in ratings) / total:.1f}), backtracks mean {mean:.1f}, "
        f"{counts[0] / total:.0%} solvable by elimination alone",
        "  clues:      " + " ".join(f"{c}:{clues[c]}" for c in sorted(clues)),
        "  backtracks: " + " ".join(f"{n}:{c}" for n, c in zip(names, counts, strict=True)),
    ]
