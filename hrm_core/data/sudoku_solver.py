"""Sudoku of any box size (2 -> 4x4, 3 -> 9x9): an exact solver and a unique-puzzle generator.

Grids are flat sequences of n*n ints, 0 for a blank and 1..n for digits. The solver is a
bitmask backtracking search that always branches on the cell with the fewest candidates; it
counts solutions up to a limit, which is how the generator proves uniqueness after each clue
it removes (the reference builder reads puzzles from a hub dataset we cannot reach).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class _Board:
    """Row/column/box digit masks over a flat grid, with the blank cells still to fill."""

    def __init__(self, grid: Sequence[int], box: int) -> None:
        n = box * box
        if len(grid) != n * n:
            raise ValueError(f"a {n}x{n} grid needs {n * n} cells, got {len(grid)}")
        self.n, self.full = n, (1 << n) - 1
        self.cells = [int(v) for v in grid]
        self.row = [i // n for i in range(n * n)]
        self.col = [i % n for i in range(n * n)]
        self.box = [(i // n // box) * box + (i % n) // box for i in range(n * n)]
        self.masks = [0] * (3 * n)  # rows, then columns, then boxes
        self.empty: list[int] = []
        self.consistent = True
        for i, value in enumerate(self.cells):
            if value == 0:
                self.empty.append(i)
            elif not 1 <= value <= n or self.candidates(i) >> (value - 1) & 1 == 0:
                self.consistent = False
            else:
                self.place(i, value)

    def candidates(self, i: int) -> int:
        m, n = self.masks, self.n
        return self.full & ~(m[self.row[i]] | m[n + self.col[i]] | m[2 * n + self.box[i]])

    def place(self, i: int, value: int) -> None:
        bit, n = 1 << (value - 1), self.n
        self.cells[i] = value
        self.masks[self.row[i]] |= bit
        self.masks[n + self.col[i]] |= bit
        self.masks[2 * n + self.box[i]] |= bit

    def clear(self, i: int) -> None:
        bit, n = ~(1 << (self.cells[i] - 1)), self.n
        self.cells[i] = 0
        self.masks[self.row[i]] &= bit
        self.masks[n + self.col[i]] &= bit
        self.masks[2 * n + self.box[i]] &= bit

    def search(
        self, depth: int, limit: int, rng: random.Random | None, found: list[list[int]]
    ) -> int:
        """Count completions from `empty[depth:]`, stopping at `limit`; keep the first one."""
        if depth == len(self.empty):
            if not found:
                found.append(list(self.cells))
            return 1
        best_k, best_mask, best_count = depth, 0, self.n + 1
        for k in range(depth, len(self.empty)):
            mask = self.candidates(self.empty[k])
            count = mask.bit_count()
            if count < best_count:
                best_k, best_mask, best_count = k, mask, count
                if count <= 1:
                    break
        if best_count == 0:
            return 0
        empty = self.empty
        empty[depth], empty[best_k] = empty[best_k], empty[depth]
        cell = empty[depth]
        digits = [d + 1 for d in range(self.n) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        total = 0
        for digit in digits:
            self.place(cell, digit)
            total += self.search(depth + 1, limit - total, rng, found)
            self.clear(cell)
            if total >= limit:
                break
        return total


def count_solutions(grid: Sequence[int], box: int, limit: int = 2) -> int:
    """Number of solutions of `grid`, counted up to `limit` (2 is enough to test uniqueness)."""
    board = _Board(grid, box)
    return board.search(0, limit, None, []) if board.consistent else 0


def solve(grid: Sequence[int], box: int, rng: random.Random | None = None) -> list[int] | None:
    """One solution of `grid` (a random one when `rng` is given), or None when it has none."""
    board = _Board(grid, box)
    found: list[list[int]] = []
    if board.consistent:
        board.search(0, 1, rng, found)
    return found[0] if found else None


def random_solution(box: int, rng: random.Random) -> list[int]:
    """A uniformly shuffled search over the empty grid: a random valid full grid."""
    solution = solve([0] * box**4, box, rng)
    assert solution is not None  # the empty grid always has solutions
    return solution


def make_puzzle(
    solution: Sequence[int], box: int, target_givens: int, rng: random.Random
) -> list[int]:
    """Blank cells of `solution` in random order while the puzzle stays uniquely solvable.

    Stops at `target_givens` clues or when no further clue can go (a minimal puzzle), so fewer
    givens means a harder puzzle, down to what uniqueness allows.
    """
    puzzle = list(solution)
    order = list(range(len(puzzle)))
    rng.shuffle(order)
    givens = len(puzzle)
    for cell in order:
        if givens <= target_givens:
            break
        value, puzzle[cell] = puzzle[cell], 0
        if count_solutions(puzzle, box, limit=2) == 1:
            givens -= 1
        else:
            puzzle[cell] = value
    return puzzle
