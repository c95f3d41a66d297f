"""Gradient quantities, measured after backward and before clipping: the global norm, the norm
per module group and per block, and the count of non-finite values."""

from __future__ import annotations

import math

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Tier
from hrm_core.probe.target import TOTAL, ProbeTarget, constant, is_block_group

BEFORE = frozenset({"before_step"})


class GradNorm(Quantity):
    """grad/norm: the global L2 norm of all parameter gradients, before clipping.

    What it reveals: the size of the step the optimizer is asked to take. It is the norm that
    `clip_grad_norm_` sees (parameters only: the puzzle embedding is a buffer with its own
    SignSGD optimizer and its own grad/norm/puzzle_emb).
    Why it matters for HRM: the one-step gradient flows through only the last H and L update,
    and Q-learning targets are bootstrapped from the model itself, so a spike often starts in
    the Q head and feeds back; late-stage overfitting on Sudoku-Extreme makes it unstable.
    Remedy: lower lr, set grad_clip_norm (1.0), roll back to the last good checkpoint.
    Cost: one fused `_foreach_norm` over the gradients, then one gather and one `vector_norm`
    for every group at once (shared with the group norms).
    """

    name = "grad/norm"
    tier = Tier.CHEAP
    hooks = BEFORE

    def before_step(self, ctx: StepContext) -> Metrics | None:
        norms = ctx.grad_norms
        return None if norms is None else {self.name: norms[TOTAL]}


class _GroupGradNorm(Quantity):
    """Shared code: picks its rows of the gradient norms every group shares (`ctx.grad_norms`:
    one gather and norm for all groups)."""

    name = "grad/norm/"
    hooks = BEFORE
    blocks: bool

    def setup(self, target: ProbeTarget) -> bool:
        rows = target.grad_reducer.names
        self._groups = [g for g in rows if g != TOTAL and is_block_group(g) == self.blocks]
        return bool(self._groups)

    def names(self) -> list[str]:
        return [self.name + g for g in self._groups]

    def before_step(self, ctx: StepContext) -> Metrics | None:
        norms = ctx.grad_norms
        if norms is None:
            return None
        return {self.name + g: norms[g] for g in self._groups}


class GroupGradNorm(_GroupGradNorm):
    """grad/norm/GROUP for embed, puzzle_emb, H, L, q_head, lm_head: gradient norm per module.

    What it reveals: which module the gradient lives in. A vanishing grad/norm/H (or L) means
    that level stopped learning and HRM degenerates to one level; an exploding q_head norm
    points at Q-learning divergence; grad/norm/puzzle_emb shows whether the puzzle prefix
    still receives signal.
    Why it matters for HRM: the one-step gradient reaches H and L through a single update each,
    so each level can starve independently of the global norm.
    Remedy: check the H/L path (no_grad placement, z_L injected into H), adjust lr.
    Cost: none beyond GradNorm's (the group rows come from the same gather and norm).
    """

    tier = Tier.STANDARD
    blocks = False


class BlockGradNorm(_GroupGradNorm):
    """grad/norm/H.0 ... grad/norm/L.3: gradient norm per transformer block.

    What it reveals: where inside a level the gradient dies or explodes (post-norm stacks
    tend to starve their first blocks).
    Why it matters for HRM: each block is applied H_cycles x L_cycles times per segment, so
    one unstable block destabilises the whole recurrence.
    Remedy: lower lr; check the RMSNorm runs in fp32; fewer layers or cycles.
    Cost: none beyond GradNorm's (the block rows come from the same gather and norm).
    """

    tier = Tier.FULL
    blocks = True


class NonfiniteCount(Quantity):
    """nonfinite/count: NaN and +-inf values among the loss and all gradients this step.

    What it reveals: a step that poisons the weights (and Adam's moments) if the optimizer
    takes it. Counting (not just flagging) tells one bad element from a blown-up module.
    Why it matters for HRM: stablemax's log, the bootstrapped Q target and bf16 carries are
    the usual sources; one NaN step corrupts the optimizer state for good.
    Remedy: roll back to the last checkpoint, lower lr, clip gradients; keep the loss's log
    in fp64; look for NaN/inf in that step's inputs.
    Cost: a non-finite value makes its tensor's norm non-finite, so on the CPU, where reading a
    tensor is a memory read and not a device sync, the count runs only when the gradient
    norms GradNorm computed are not all finite (or overflowed): on a healthy step it is free.
    On an accelerator it always runs, on the device: the gradients concatenated into one flat
    fp32 buffer, where g * 0 is 0 if g is finite and NaN if not, then nan_to_num(nan=1) and a
    sum count them (exact below 2**24 non-finite values), one transient copy of the gradients.
    `count_on_healthy_cpu_steps=True` makes the CPU do the same (the tests' no-sync check).
    """

    name = "nonfinite/count"
    tier = Tier.CHEAP
    hooks = BEFORE

    def __init__(self, every: int = 1, count_on_healthy_cpu_steps: bool = False) -> None:
        super().__init__(every)
        self.count_on_healthy_cpu_steps = count_on_healthy_cpu_steps

    def before_step(self, ctx: StepContext) -> Metrics | None:
        grads = [g for g in ctx.grads if g is not None]
        loss = None if ctx.loss is None else torch.as_tensor(ctx.loss).detach().reshape(-1)
        if not grads and loss is None:
            return None
        device = grads[0].device if grads else loss.device
        if device.type == "cpu" and not self.count_on_healthy_cpu_steps:
            # CPU tensors: these reads are memory reads, not device syncs.
            finite_grads = not grads or math.isfinite(ctx.grad_tensor_norms.sum().item())
            if finite_grads and (loss is None or math.isfinite(loss.sum().item())):
                return {self.name: constant(0, device, torch.int64)}
        count = None
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads]).float()  # (total elements,)
            count = torch.nan_to_num_(flat.mul_(0), nan=1.0).sum()
        if loss is not None:
            loss_count = torch.count_nonzero(loss * 0)
            count = loss_count if count is None else count + loss_count
        return {self.name: count}
