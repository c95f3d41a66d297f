"""ARC scored as in the paper: undo each augmentation, vote across copies, pass@k per task.

Every test example is evaluated once per augmented copy of its task. A prediction is cropped
off the canvas (the largest rectangle of colour cells from the grid's top-left corner, as the
reference's arc_eval notebook), mapped back through its puzzle's augmentation (inverse dihedral
transform, inverse colour permutation; the crop undoes the translation), and counted as a vote
for that grid. Candidates rank by votes, ties by mean sigmoid(q_halt) (the reference's
evaluate.py + arc_eval.ipynb). A test output is solved at k when the true grid is among the k
best; a task scores the fraction of its test outputs solved, and pass@k is the mean over tasks
(ARC Prize scoring, as TRM's evaluator). The two best candidates form the ARC submission JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_core.data.grids import dihedral, inverse_dihedral
from hrm_doctor.errors import UserError

CANVAS = 30
COLOUR_OFFSET, COLOURS = 2, 10
PASS_KS = (1, 2)
"""The pass@k reported in telemetry: eval/arc/pass@1, eval/arc/pass@2."""
ATTEMPTS = 2
"""Attempts per test output in the submission (the ARC Prize allows two)."""
_AUGMENTED = re.compile(r"^(?P<task>.+)_t(?P<transform>[0-7])_(?P<colours>\d{10})$")

GridKey = tuple[tuple[int, ...], bytes]


def grid_key(grid: np.ndarray) -> GridKey:
    return tuple(int(s) for s in grid.shape), np.ascontiguousarray(grid, np.uint8).tobytes()


def grid_origin(canvas: np.ndarray) -> tuple[int, int]:
    """Top-left corner of the grid on a (flat or 30x30) input canvas: its first colour cell's
    row and column ((0, 0) when there is none; the untranslated test split always has 0, 0)."""
    cells = np.asarray(canvas).reshape(CANVAS, CANVAS) >= COLOUR_OFFSET
    rows, cols = np.nonzero(cells)
    return (int(rows.min()), int(cols.min())) if rows.size else (0, 0)


def crop(canvas: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The colour grid (0..9, uint8) at `origin`: the largest-area rectangle of colour tokens
    whose rows each reach at least its width (the reference notebook's crop)."""
    grid = np.asarray(canvas).reshape(CANVAS, CANVAS)[origin[0] :, origin[1] :]
    valid = (grid >= COLOUR_OFFSET) & (grid < COLOUR_OFFSET + COLOURS)
    first_invalid = np.where(valid.all(axis=1), valid.shape[1], np.argmin(valid, axis=1))
    widths = np.minimum.accumulate(first_invalid)  # (rows,) widths of the growing rectangle
    areas = np.arange(1, valid.shape[0] + 1) * widths
    best = int(np.argmax(areas))  # the first largest, as the reference's strict `>`
    if areas[best] == 0:
        return np.zeros((0, 0), np.uint8)
    return (grid[: best + 1, : widths[best]] - COLOUR_OFFSET).astype(np.uint8)


@dataclass(frozen=True)
class Augmentation:
    """What an identifier name says was done to its task: `<task>_t<transform>_<colours>`."""

    task: str
    transform: int = 0
    colours: np.ndarray | None = None
    """(10,) colours[old] = new; None: not augmented."""

    @classmethod
    def from_name(cls, name: str) -> Augmentation:
        match = _AUGMENTED.match(name)
        if match is None:
            return cls(name)
        colours = np.array([int(c) for c in match["colours"]], dtype=np.uint8)
        if sorted(colours.tolist()) != list(range(COLOURS)):
            return cls(name)
        return cls(match["task"], int(match["transform"]), colours)

    @property
    def is_original(self) -> bool:
        return self.colours is None

    def invert(self, grid: np.ndarray) -> np.ndarray:
        """The grid of the original task this augmented grid came from."""
        if self.colours is None:
            return grid
        inverse_colours = np.argsort(self.colours).astype(np.uint8)
        return inverse_colours[dihedral(grid, inverse_dihedral(self.transform))]


@dataclass
class _Candidates:
    """The votes for one test input of one task: grid key -> [votes, sum of q, grid]."""

    table: dict[GridKey, list[Any]] = field(default_factory=dict)

    def add(self, grid: np.ndarray, q: float, votes: int = 1) -> None:
        entry = self.table.setdefault(grid_key(grid), [0, 0.0, grid])
        entry[0] += votes
        entry[1] += q

    def ranked(self) -> list[tuple[GridKey, np.ndarray]]:
        """Best first: most votes, then highest mean q; ties keep first-seen order."""
        order = sorted(
            self.table.items(), key=lambda kv: (kv[1][0], kv[1][1] / kv[1][0]), reverse=True
        )
        return [(key, entry[2]) for key, entry in order]


class ArcVotes:
    """Predictions of augmented test examples in, pass@k and a submission out.

    `add_truth` registers each task's test inputs and outputs (from the unaugmented puzzles of
    the test split); `add_prediction` adds one vote; `merge` adds another rank's votes.
    """

    def __init__(self) -> None:
        self.truth: dict[str, list[tuple[GridKey, GridKey]]] = {}
        self.votes: dict[tuple[str, GridKey], _Candidates] = {}

    def add_truth(self, task: str, input_grid: np.ndarray, output_grid: np.ndarray) -> None:
        self.truth.setdefault(task, []).append((grid_key(input_grid), grid_key(output_grid)))

    def add_prediction(
        self, name: str, input_canvas: np.ndarray, pred_canvas: np.ndarray, q_halt: float
    ) -> None:
        """One augmented copy's prediction; `q_halt` is sigmoid(q_halt_logit) in [0, 1]."""
        aug = Augmentation.from_name(name)
        origin = grid_origin(input_canvas)
        input_key = grid_key(aug.invert(crop(input_canvas, origin)))
        pred = aug.invert(crop(pred_canvas, origin))
        self.votes.setdefault((aug.task, input_key), _Candidates()).add(pred, q_halt)

    def merge(self, other: ArcVotes) -> None:
        """Add `other`'s votes (its truth is not needed: every rank reads the same test set)."""
        for key, candidates in other.votes.items():
            target = self.votes.setdefault(key, _Candidates())
            for grid_id, (votes, q_sum, grid) in candidates.table.items():
                entry = target.table.setdefault(grid_id, [0, 0.0, grid])
                entry[0] += votes
                entry[1] += q_sum

    def _ranked(self, task: str, input_key: GridKey) -> list[tuple[GridKey, np.ndarray]]:
        candidates = self.votes.get((task, input_key))
        return candidates.ranked() if candidates is not None else []

    def check(self) -> None:
        """Every vote is for a known test input: else the inversion or the names are wrong."""
        known = {(task, pair[0]) for task, pairs in self.truth.items() for pair in pairs}
        for task, input_key in self.votes:
            if (task, input_key) not in known:
                raise UserError(
                    f"ARC scoring: a prediction for task '{task}' does not map back to any of "
                    "its test inputs; identifiers.json does not match the test split"
                )

    def pass_at(self, ks: Iterable[int] = PASS_KS) -> dict[int, float]:
        """pass@k for each k: mean over tasks of the fraction of test outputs solved at k."""
        ks = tuple(ks)
        totals = dict.fromkeys(ks, 0.0)
        for task, pairs in self.truth.items():
            for input_key, output_key in pairs:
                ranked = [key for key, _ in self._ranked(task, input_key)]
                for k in ks:
                    totals[k] += (output_key in ranked[:k]) / len(pairs)
        return {k: totals[k] / max(len(self.truth), 1) for k in ks}

    def submission(self, attempts: int = ATTEMPTS) -> dict[str, list[dict[str, list[list[int]]]]]:
        """{task: [{"attempt_1": grid, "attempt_2": grid}, ...]}, one entry per test input in
        order; fewer candidates than attempts repeat the best; none at all give [[0]]."""
        out = {}
        for task, pairs in self.truth.items():
            entries = []
            for input_key, _ in pairs:
                grids = [grid.tolist() for _, grid in self._ranked(task, input_key)[:attempts]]
                grids = grids or [[[0]]]
                grids += [grids[0]] * (attempts - len(grids))
                entries.append({f"attempt_{i + 1}": g for i, g in enumerate(grids)})
            out[task] = entries
        return out


def truth_from_test_split(
    names: Sequence[str], inputs: np.ndarray, labels: np.ndarray, puzzle_ids: np.ndarray,
    puzzle_indices: np.ndarray,
) -> ArcVotes:  # fmt: skip
    """ArcVotes holding the true test outputs: the unaugmented puzzles of a test set."""
    votes = ArcVotes()
    for p, identifier in enumerate(puzzle_ids):
        aug = Augmentation.from_name(names[int(identifier)])
        if not aug.is_original:
            continue
        for row in range(int(puzzle_indices[p]), int(puzzle_indices[p + 1])):
            origin = grid_origin(inputs[row])
            votes.add_truth(aug.task, crop(inputs[row], origin), crop(labels[row], origin))
    return votes
