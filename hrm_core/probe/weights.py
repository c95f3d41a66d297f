"""Weight quantities, measured after optimizer.step(): weight norm per group and per block, the
update/weight ratio (norm of this step's change over the weight norm), and the distance of the
weights' moving average (TRM's EMA) from the weights."""

from __future__ import annotations

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Tier
from hrm_core.probe.target import ProbeTarget, is_block_group, tensor_norms

AFTER = frozenset({"after_step"})


class _GroupParamNorm(Quantity):
    """Shared code: picks its rows of the weight norms every group shares (`ctx.param_norms`)."""

    name = "param/norm/"
    hooks = AFTER
    blocks: bool

    def setup(self, target: ProbeTarget) -> bool:
        self._groups = [g for g in target.groups if is_block_group(g) == self.blocks]
        return bool(self._groups)

    def names(self) -> list[str]:
        return [self.name + g for g in self._groups]

    def after_step(self, ctx: StepContext) -> Metrics | None:
        norms = ctx.param_norms
        return {self.name + g: norms[g] for g in self._groups}


class GroupParamNorm(_GroupParamNorm):
    """param/norm/GROUP for embed, H, L, q_head, lm_head: L2 norm of each module's weights.

    What it reveals: weight growth (missing or too weak weight decay, a level that drifts) or
    collapse (too much decay). The denominator of the update ratio.
    Why it matters for HRM: post-norm blocks hide weight growth from the activations until
    the attention logits saturate; a q_head whose norm keeps growing drives Q divergence.
    Remedy: check weight_decay (the Sudoku/Maze recipes use 1.0), lower lr.
    Cost: one fused `_foreach_norm` over the weights + one gather and sum for all groups.
    """

    tier = Tier.STANDARD
    blocks = False


class BlockParamNorm(_GroupParamNorm):
    """param/norm/H.0 ... param/norm/L.3: weight norm per transformer block.

    What it reveals: which block grows or decays. Why it matters for HRM: a block is applied
    many times per segment, so its norm sets the gain of the recurrence.
    Remedy: as for GroupParamNorm. Cost: none beyond GroupParamNorm's (same gather + sum).
    """

    tier = Tier.FULL
    blocks = True


class UpdateRatio(Quantity):
    """update/ratio/GROUP (groups and blocks): ||this step's weight change|| / ||weights||.

    What it reveals: how fast each module actually moves, whatever the optimizer, schedule,
    clipping and weight decay did to the gradient. Healthy values sit near 1e-3 (CS231n);
    above ~0.05 the module is rewritten every few steps, below ~1e-6 it is frozen.
    Why it matters for HRM: H and L are applied H_cycles x L_cycles times per segment, so an
    oversized step is amplified through the recurrence; a frozen H (or q_head) collapses the
    hierarchy (or never learns to halt).
    Remedy: too large -> lower lr; too small -> check the group is in the optimizer, its lr
    is not zero, and its gradient is not cut by the one-step-gradient no_grad block.

    How: the change needs the weights before the step. Adam-atan2's update is not a function
    of its state alone (weight decay and lr enter too), so no optimizer-specific shortcut: a
    persistent snapshot of the weights (`_foreach_copy_`, allocated once) holds the weights
    before the step; after_step subtracts in place and takes one fused norm of the weights and
    the updates (shared with GroupParamNorm, which runs after it). The snapshot for the next
    due step is taken at the end of after_step, while the weights are still in cache (about 3x
    cheaper than in before_step, measured): the weights after step N are the weights before
    step N + 1, so a change made to them between the steps (loading a checkpoint in-process)
    would count as step N + 1's update. before_step takes the snapshot itself when there is
    none for its step (the first step, after a gap).
    Cost: 3 passes over the weights per due step and one extra copy of the weights in memory
    (4 bytes x parameters: 0.5 MB for the smoke model, 109 MB for the 27M reference model).
    Without hooks (`Probe.step`), the change is measured between consecutive calls instead.
    """

    name = "update/ratio/"
    tier = Tier.FULL
    hooks = frozenset({"before_step", "after_step"})

    def setup(self, target: ProbeTarget) -> bool:
        self._reducer = target.param_reducer
        self._target = target
        self._params = target.params
        self._snapshot: list[torch.Tensor] | None = None
        self._snapshot_for: int | None = None
        """The step whose weights-before the snapshot holds."""
        return bool(target.groups)

    def names(self) -> list[str]:
        return [self.name + g for g in self._reducer.names]

    def _take_snapshot(self, for_step: int) -> None:
        if self._snapshot is None:
            self._snapshot = [torch.empty_like(p) for p in self._params]
        torch._foreach_copy_(self._snapshot, self._params)
        self._snapshot_for = for_step

    def _ratios(self, ctx: StepContext) -> Metrics:
        torch._foreach_sub_(self._snapshot, self._params)  # snapshot := before - after
        self._snapshot_for = None
        if "param_group_vector" in ctx.__dict__:  # weight norms already computed this call
            weight, update = ctx.param_group_vector, self._reducer(tensor_norms(self._snapshot))
        else:  # one fused norm of weights and updates, shared with GroupParamNorm
            both = self._target.param_update_reducer(tensor_norms(self._params + self._snapshot))
            weight, update = both.view(2, -1).unbind(0)  # (groups,) each
            ctx.param_group_vector = weight
        # (groups,); a group whose weights are all zero has no ratio: inf (or NaN if unmoved).
        ratio = update / weight
        return self._reducer.named(ratio, self.name)

    def before_step(self, ctx: StepContext) -> Metrics | None:
        if self._snapshot_for != ctx.step:
            self._take_snapshot(ctx.step)
        return None

    def after_step(self, ctx: StepContext) -> Metrics | None:
        if self._snapshot_for != ctx.step:  # no snapshot for this step (before_step not run)
            return None
        metrics = self._ratios(ctx)
        if self.should_compute(ctx.step + 1):
            self._take_snapshot(ctx.step + 1)  # warm: the pass above just read the weights
        return metrics

    def standalone(self, ctx: StepContext, due: bool) -> Metrics | None:
        """Between consecutive `Probe.step` calls (one optimizer step apart when called every
        step, whether the call comes before or after optimizer.step()): the snapshot is taken
        at the call before each due step."""
        result = self._ratios(ctx) if due and self._snapshot_for == ctx.step else None
        if self.should_compute(ctx.step + 1):
            self._take_snapshot(ctx.step + 1)
        return result


class EMADistance(Quantity):
    """ema/param_dist: ||ema - w|| / ||w|| over every trained parameter, after the step's EMA
    update (with `ema=true`; TRM's recipes all use it).

    What it reveals: how far the evaluated weights (the average) sit from the trained ones.
    At rate r and a steady update size u per step it settles near u * r / (1 - r); it keeps
    growing when the weights run away faster than the average follows (divergence), and stays
    near its starting distance when the average barely moves (rate too close to 1 for the
    run's length: evaluation then scores weights close to the initial ones).
    Why it matters for TRM: every evaluation and checkpoint of the reference recipes is the
    EMA copy; a lagging average makes eval accuracy trail train accuracy for no model reason.
    Remedy: lagging -> a smaller ema_rate (0.999 for 10k+ steps, 0.99 for short runs);
    diverging -> lower lr.
    Cost: with hrm_core's `WeightEMA` three fused passes over the weights in its update
    (instead of one); for the reference's `EMAHelper` a pass over weights and average.
    """

    name = "ema/param_dist"
    tier = Tier.STANDARD
    hooks = AFTER
    requires = "a weights' moving average among the optimizers (ema=true)"

    def setup(self, target: ProbeTarget) -> bool:
        self._ema = target.ema
        if self._ema is None:
            return False
        self._root = target.root
        if hasattr(self._ema, "track_distance"):
            self._ema.track_distance = True
        return True

    def observe(self, ctx: StepContext) -> None:
        """After each step: the EMA measures the distance in its next update only when that
        step is due (its extra passes are wasted otherwise)."""
        if hasattr(self._ema, "track_distance"):
            self._ema.track_distance = self.should_compute(ctx.step + 1)

    def after_step(self, ctx: StepContext) -> Metrics | None:
        ema = self._ema
        if hasattr(ema, "last_distance"):
            dist, ema.last_distance = ema.last_distance, None  # this step's, or none
            return None if dist is None else {self.name: dist}
        shadow = ema.shadow  # the reference's EMAHelper: {parameter name: average}
        pairs = [(shadow[n], p.detach()) for n, p in self._root.named_parameters() if n in shadow]
        if not pairs:
            return None
        averages, weights = zip(*pairs, strict=True)
        diff = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(
            torch._foreach_sub(list(averages), list(weights)))))  # fmt: skip
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(weights))))
        return {self.name: diff / norm}
