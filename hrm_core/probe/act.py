"""ACT quantities from the step's outputs alone: Q values, the Q target, halting steps, halting
at the maximum, premature halting, late halting (segments spent after the answer was right),
and the LM loss by ACT step (deep supervision).

A fraction over the sequences that halted this step is NaN on a step where none halted
(undefined, not zero); the rule engine skips non-finite values in its windows.
"""

from __future__ import annotations

import math

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Ragged, Tier
from hrm_core.probe.target import ProbeTarget

COLLECT = frozenset({"collect"})
Q_KINDS = ("q_halt", "q_continue")


class QValueSummary(Quantity):
    """act/q_halt/mean, act/q_halt/absmax, act/q_continue/mean, act/q_continue/absmax.

    What it reveals: where the halting head's beliefs sit and whether they blow up. q_halt is
    the logit of "the answer is right, stop"; q_continue is the bootstrapped value of going on.
    Why it matters for HRM: there is no target network, so Q divergence shows up as |Q|
    growing without bound; a q_halt mean drifting ever more negative is the signature of
    halting collapsing to halt_max_steps (the ARC account in HRM_NOTES: -3.6 to -5.7).
    Remedy: lower lr, more exploration (arch.halt_exploration_prob), clip gradients.
    Cost: one stack and two reductions over (2, B).
    """

    name = "act/q"
    tier = Tier.CHEAP
    hooks = COLLECT

    def setup(self, target: ProbeTarget) -> bool:
        self._kinds = Q_KINDS if target.has_q_continue else Q_KINDS[:1]
        return True

    def names(self) -> list[str]:
        return [f"act/{k}/{s}" for k in self._kinds for s in ("mean", "absmax")]

    def collect(self, ctx: StepContext) -> Metrics | None:
        kinds = [k for k in self._kinds if ctx.output(f"{k}_logits") is not None]
        if not kinds:
            return None
        q = torch.stack([ctx.output(f"{k}_logits").float() for k in kinds])  # (kinds, B)
        means = q.mean(1).unbind(0)
        absmax = torch.linalg.vector_norm(q, ord=math.inf, dim=1).unbind(0)  # max |q|
        out: Metrics = {}
        for kind, mean, peak in zip(kinds, means, absmax, strict=True):
            out[f"act/{kind}/mean"] = mean
            out[f"act/{kind}/absmax"] = peak
        return out


class TargetQMean(Quantity):
    """act/target_q_continue/mean: the mean bootstrapped Q-continue target (training only).

    What it reveals: what the Q head is being pulled towards: sigmoid of the next segment's
    best Q. A target stuck near 1 while accuracy is low means the head bootstraps from its
    own optimism; near 0 it learns that continuing never pays.
    Why it matters for HRM: no replay buffer and no target network, so target and estimate
    can chase each other (the classic deadly triad).
    Remedy: lower lr; more exploration. Cost: one mean.
    """

    name = "act/target_q_continue/mean"
    tier = Tier.CHEAP
    hooks = COLLECT
    requires = "a Q-continue head (TRM's simplified halting has none)"

    def setup(self, target: ProbeTarget) -> bool:
        return target.has_q_continue

    def collect(self, ctx: StepContext) -> Metrics | None:
        target = ctx.output("target_q_continue")
        return None if target is None else {self.name: target.float().mean()}


class QSamples(Quantity):
    """act/q_halt, act/q_continue: per-sample Q logits (1-D, every tensor_every steps).

    What it reveals: the distribution behind the means: bimodal (the head separates solved
    from unsolved puzzles, healthy) or one lump (it does not discriminate).
    Why it matters for HRM: a mean can stay put while the head stops discriminating.
    Remedy: as for QValueSummary. Cost: none on the device (the logits themselves).
    """

    name = "act/q"
    tier = Tier.CHEAP
    hooks = COLLECT
    per_sample = True

    def setup(self, target: ProbeTarget) -> bool:
        self._kinds = Q_KINDS if target.has_q_continue else Q_KINDS[:1]
        return True

    def names(self) -> list[str]:
        return [f"act/{k}" for k in self._kinds]

    def collect(self, ctx: StepContext) -> Metrics | None:
        out = {f"act/{k}": ctx.output(f"{k}_logits") for k in self._kinds}
        return {k: v for k, v in out.items() if v is not None} or None


class HaltSteps(Quantity):
    """act/halt_steps: the ACT step at which each sequence that halted this step halted (1-D,
    every tensor_every steps).

    What it reveals: the whole halting distribution (train/steps is its mean): whether
    sequences halt early, late, or pile up at halt_max_steps.
    Why it matters for HRM: ACT is HRM's adaptive depth; a distribution collapsed at 1 or at
    the maximum means the depth is not adaptive any more.
    Remedy: see HaltAtMaxFrac / PrematureHaltFrac.
    Cost: none on the device: the halted slots are selected on the host after the one copy
    (selecting on the device would need the count on the host: a sync).
    """

    name = "act/halt_steps"
    tier = Tier.CHEAP
    hooks = COLLECT
    per_sample = True

    def collect(self, ctx: StepContext) -> Metrics | None:
        if ctx.halted is None or ctx.steps is None:
            return None
        return {self.name: Ragged(ctx.steps, ctx.halted)}


class _HaltFraction(Quantity):
    tier = Tier.CHEAP
    hooks = COLLECT
    requires = "halt_max_steps (a Probe argument, or an attribute of the ACT model)"

    def setup(self, target: ProbeTarget) -> bool:
        self._max_steps = target.halt_max_steps
        return self._max_steps is not None


class HaltAtMaxFrac(_HaltFraction):
    """act/halt_at_max_frac: fraction of the sequences halted this step that ran to
    halt_max_steps (NaN when none halted).

    What it reveals: whether the Q head ever decides to stop. Near 1 at the start (q_head bias
    -5), it should fall as the model learns.
    Why it matters for HRM: halting collapsing to the maximum wastes compute and, in the ARC
    account, coincided with accuracy falling from 49% to 8%.
    Remedy: more exploration (arch.halt_exploration_prob 0.2), lower lr; roll back.
    Cost: three element-wise ops and two sums over (B,).
    """

    name = "act/halt_at_max_frac"

    def collect(self, ctx: StepContext) -> Metrics | None:
        halted, steps = ctx.halted, ctx.steps
        if halted is None or steps is None:
            return None
        at_max = (halted & (steps >= self._max_steps)).sum()
        return {self.name: at_max / ctx.halted_count}  # 0/0 -> NaN: nothing halted


class PrematureHaltFrac(_HaltFraction):
    """act/premature_halt_frac: fraction of the sequences halted this step that stopped before
    halt_max_steps while their prediction was still wrong (NaN when none halted).

    What it reveals: a Q head that halts too eagerly: it gives up segments it could have
    used. Why it matters for HRM: halting collapsing to the minimum leaves one H update per
    puzzle; the hierarchy's depth, HRM's whole point, goes unused.
    Remedy: lower lr; check q_halt_loss targets "sequence exactly correct"; more exploration.
    Cost: four element-wise ops and two sums over (B,).
    """

    name = "act/premature_halt_frac"

    def collect(self, ctx: StepContext) -> Metrics | None:
        halted, steps, correct = ctx.halted, ctx.steps, ctx.seq_is_correct
        if halted is None or steps is None or correct is None:
            return None
        premature = (halted & (steps < self._max_steps) & ~correct).sum()
        return {self.name: premature / ctx.halted_count}


NEVER_CORRECT = -1
UNKNOWN = -2


class HaltDelay(Quantity):
    """act/halt_delay_mean: mean number of segments a sequence ran on after its prediction
    first became exactly right, over the sequences halted this step that had been right at
    some segment (NaN when there are none).

    What it reveals: compute wasted by late halting (0 = the head stops as soon as the answer
    is right). Ren & Liu (2026) find correctness often arrives suddenly at one step; a head
    that does not notice keeps running.
    Why it matters for HRM: training and inference pay for every segment; evaluation runs all
    halt_max_steps anyway, so only training halting can save compute.
    Remedy: more weight on the Q loss relative to the LM loss, or more exploration.

    How: a (B,) int32 device tensor per slot holds the ACT step at which the slot's current
    example was first exactly right (-1: not yet; -2: unknown). `observe` updates it at every
    collect, due or not, and clears a slot when it starts a new example; a gap in the steps
    (collect not called every step) marks every slot unknown until its next reset.
    Cost: four element-wise ops over (B,) per step, two sums when due.
    """

    name = "act/halt_delay_mean"
    tier = Tier.CHEAP
    hooks = COLLECT

    def setup(self, target: ProbeTarget) -> bool:
        self._first_right: torch.Tensor | None = None
        self._last_step: int | None = None
        return True

    def observe(self, ctx: StepContext) -> None:
        correct, steps, reset = ctx.seq_is_correct, ctx.steps, ctx.reset
        if correct is None or steps is None or reset is None:
            self._first_right = None
            return
        first = self._first_right
        if (
            first is None
            or first.shape != steps.shape
            or first.device != steps.device
            or self._last_step != ctx.step - 1
        ):
            first = torch.full(steps.shape, UNKNOWN, dtype=torch.int32, device=steps.device)
        first = first.masked_fill(reset, NEVER_CORRECT)
        first = torch.where(correct & (first == NEVER_CORRECT), steps.to(torch.int32), first)
        self._first_right, self._last_step = first, ctx.step

    def collect(self, ctx: StepContext) -> Metrics | None:
        first, halted = self._first_right, ctx.halted
        if first is None or halted is None or self._last_step != ctx.step:
            return None
        counted = halted & (first >= 0)  # (B,)
        delay = ((ctx.steps - first) * counted).sum()
        return {self.name: delay / counted.sum()}  # 0/0 -> NaN


class SupervisionStepLoss(_HaltFraction):
    """act/lm_loss_by_step: the mean per-sequence LM loss of the slots at each ACT step
    (supervision step) 1..halt_max_steps this step (1-D, every tensor_every steps; NaN for a
    step no slot is at).

    What it reveals: what deep supervision buys: healthy runs improve the answer from one
    step to the next, so the loss falls along the array; a flat array means later steps
    repeat the first one's answer (TRM: y stopped changing), a rising one that recursion
    makes it worse.
    Why it matters for HRM and TRM: each training step mixes slots at every supervision step;
    the scalar train/lm_loss averages over them and hides where the loss is.
    Remedy: flat with low accuracy -> more cycles per step or more exploration; rising ->
    fewer cycles, lower lr.
    Cost: two scatter-adds over (B,) (the loss head's per-sequence loss).
    """

    name = "act/lm_loss_by_step"
    per_sample = True

    def collect(self, ctx: StepContext) -> Metrics | None:
        loss, steps = ctx.output("seq_lm_loss"), ctx.steps
        if loss is None or steps is None:
            return None
        index = (steps.long() - 1).clamp(0, self._max_steps - 1)  # (B,): step 1 -> column 0
        loss = loss.float()
        sums = loss.new_zeros(self._max_steps).scatter_add_(0, index, loss)
        counts = loss.new_zeros(self._max_steps).scatter_add_(0, index, torch.ones_like(loss))
        return {self.name: sums / counts}  # 0/0 -> NaN: no slot at that step
