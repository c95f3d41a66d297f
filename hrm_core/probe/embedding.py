"""Puzzle-embedding quantities: sign flips and rows touched by the SignSGD step, mean row norm.

hrm_core's `CastedSparseEmbeddingSignSGD` leaves `last_stats` (device tensors) after each step;
the probe reads them. For an optimizer without them (the reference's), sign flips come from a
snapshot of the batch's rows before the step, and rows touched from the batch's ids.
"""

from __future__ import annotations

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Tier
from hrm_core.probe.target import ProbeTarget


def _first_of_each_id(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, is_first): a stable sort of `ids` and, in that order, which entries are the first
    of their id. Sorting, not `unique`: its output size would need a host sync on a GPU."""
    sorted_ids, order = torch.sort(ids, stable=True)
    is_first = torch.ones_like(sorted_ids, dtype=torch.bool)
    is_first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return order, is_first


class _PuzzleEmbQuantity(Quantity):
    tier = Tier.STANDARD
    requires = "a puzzle-embedding module (tensor attributes weights and local_weights)"

    def setup(self, target: ProbeTarget) -> bool:
        self._emb = target.puzzle_emb
        self._target = target
        self._has_stats = any(hasattr(o, "last_stats") for o in target.optimizers)
        return self._emb is not None

    def _ids(self) -> torch.Tensor | None:
        ids = getattr(self._emb, "local_ids", None)
        return ids if isinstance(ids, torch.Tensor) else None

    def _stat(self, key: str) -> torch.Tensor | None:
        stats = self._target.sparse_stats()
        return None if stats is None else stats.get(key)


class PuzzleEmbSignFlip(_PuzzleEmbQuantity):
    """emb/puzzle/sign_flip_frac: fraction of the updated embedding entries whose sign flipped
    in this step's SignSGD update.

    What it reveals: thrash. SignSGD moves every touched entry by exactly lr whatever the
    gradient; when lr is too large for the task, entries oscillate around zero and the puzzle
    conditioning is noise.
    Why it matters for HRM: the per-puzzle prefix is how ARC tells its ~1M augmented puzzles
    apart; the recipes use puzzle_emb_lr 1e-4 (Sudoku, Maze) and 1e-2 (ARC).
    Remedy: lower puzzle_emb_lr toward the recipe.
    Cost: free with hrm_core's optimizer (its `last_stats`); otherwise a gather of the batch's
    rows before the step and a compare after (needs both hooks).
    """

    name = "emb/puzzle/sign_flip_frac"
    hooks = frozenset({"before_step", "after_step"})

    def setup(self, target: ProbeTarget) -> bool:
        self._old_rows: torch.Tensor | None = None
        self._snapshot_step: int | None = None
        return super().setup(target)

    def before_step(self, ctx: StepContext) -> Metrics | None:
        ids = self._ids()
        if not self._has_stats and ids is not None:
            self._old_rows = self._emb.weights.index_select(0, ids)  # (M, dim): a copy
            self._snapshot_step = ctx.step
        return None

    def after_step(self, ctx: StepContext) -> Metrics | None:
        if self._has_stats:
            value = self._stat("sign_flip_frac")
            return None if value is None else {self.name: value}
        ids = self._ids()
        if self._snapshot_step != ctx.step or ids is None:
            return None
        order, is_first = _first_of_each_id(ids)
        old = self._old_rows.index_select(0, order)  # (M, dim), in sorted-id order
        new = self._emb.weights.index_select(0, ids.index_select(0, order))
        flipped = ((old * new) < 0) & is_first.unsqueeze(1)
        self._old_rows = self._snapshot_step = None
        return {self.name: flipped.sum() / (is_first.sum() * new.shape[1])}

    def standalone(self, ctx: StepContext, due: bool) -> Metrics | None:
        """Only from the optimizer's own statistics (a before/after pair needs the hooks)."""
        value = self._stat("sign_flip_frac") if due and self._has_stats else None
        return None if value is None else {self.name: value}


class PuzzleEmbRowsTouched(_PuzzleEmbQuantity):
    """emb/puzzle/rows_touched: distinct embedding rows the SignSGD step updated.

    What it reveals: whether the table is trained at all (0: every id is the blank id, or the
    sparse optimizer never steps) and how sparse the updates are.
    Why it matters for HRM: the table is a buffer outside `parameters()`; a wiring mistake
    leaves it at zero without any error.
    Remedy: check __puzzle_identifiers.npy against blank_identifier_id and the table size;
    check the sparse optimizer's step.
    Cost: free with hrm_core's optimizer (its count over all ranks); otherwise a sort of this
    rank's batch ids.
    """

    name = "emb/puzzle/rows_touched"
    hooks = frozenset({"after_step"})

    def after_step(self, ctx: StepContext) -> Metrics | None:
        value = self._stat("rows_touched") if self._has_stats else None
        if value is None and not self._has_stats and (ids := self._ids()) is not None:
            value = _first_of_each_id(ids)[1].sum()
        return None if value is None else {self.name: value}


class PuzzleEmbNorm(_PuzzleEmbQuantity):
    """emb/puzzle/norm/mean: mean L2 norm of the embedding rows this batch used, after the step.

    What it reveals: the embedding's scale. With decoupled weight decay, SignSGD keeps every
    entry within 1/wd, so a row norm above sqrt(dim)/wd means the decay is not applied.
    Why it matters for HRM: unbounded prefixes swamp the token embeddings.
    Remedy: restore puzzle_emb_weight_decay (Sudoku/Maze 1.0, ARC 0.1).
    Cost: a gather of the batch's rows, not a pass over the table: the ARC table is ~1M rows
    (2 GB) and the rows never used stay at zero, which would only dilute the mean. Without
    `local_ids`, the mean over the whole table.
    """

    name = "emb/puzzle/norm/mean"
    hooks = frozenset({"after_step"})

    def after_step(self, ctx: StepContext) -> Metrics | None:
        ids = self._ids()
        table = self._emb.weights
        rows = table if ids is None else table.index_select(0, ids)  # (rows, dim)
        return {self.name: torch.linalg.vector_norm(rows, dim=1, dtype=torch.float32).mean()}
