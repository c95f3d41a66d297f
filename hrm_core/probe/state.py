"""Carry-state quantities: the magnitude of the recurrent states and their change over one ACT
segment (the fixed-point residual). HRM's carries are z_H and z_L; TRM's (same slots) are the
answer y and the latent z (`ProbeTarget.state_names`).

hrm_core's models return per-sequence statistics from their own forward when
`record_state_stats` is on (the probe turns it on); for other models they are computed from
the carry (the residual then needs the previous step's carry, kept by reference).
"""

from __future__ import annotations

import math

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Tier
from hrm_core.probe.target import ProbeTarget

COLLECT = frozenset({"collect"})


def _enable_state_stats(target: ProbeTarget) -> None:
    if target.act is not None and hasattr(target.act, "record_state_stats"):
        target.act.record_state_stats = True


def _per_sequence_rms(z: torch.Tensor) -> torch.Tensor:
    """(B, positions, hidden) -> (B,) fp32 RMS (one fused norm, no squared copy)."""
    norms = torch.linalg.vector_norm(z, dim=(1, 2), dtype=torch.float32)  # (B,)
    return norms.div_(math.sqrt(z[0].numel()))


def _rms(z: torch.Tensor) -> torch.Tensor:
    """0-d fp32 RMS of a whole tensor."""
    return torch.linalg.vector_norm(z, dtype=torch.float32) / math.sqrt(z.numel())


class _CarryQuantity(Quantity):
    """Shared: the model computes per-sequence statistics; the carry's names come from it."""

    name = "state/"
    tier = Tier.STANDARD
    hooks = COLLECT

    def setup(self, target: ProbeTarget) -> bool:
        _enable_state_stats(target)
        self._levels = target.state_names
        return True


class StateRMS(_CarryQuantity):
    """state/z_H/rms, state/z_L/rms (TRM: state/y/rms, state/z/rms): RMS of each carry over the
    batch.

    What it reveals: whether the recurrent states stay at the scale post-norm sets (~1) or
    drift: growth means the residual stream outruns the norm (bf16 overflow ahead), collapse
    to the reset vectors means a level stopped writing to its state.
    Why it matters for HRM: the carry persists across segments and batches; it is the only
    channel between H and L and between ACT segments (TRM: between the answer and the latent).
    Remedy: keep the RMSNorm in fp32; lower lr; check the carry reset on halting.
    Cost: with hrm_core, two (B,) reductions in the forward (record_state_stats) and a few ops
    on (2, B) here; otherwise one pass over the carry.
    """

    def names(self) -> list[str]:
        return [f"state/{z}/rms" for z in self._levels]

    def collect(self, ctx: StepContext) -> Metrics | None:
        per_seq = [ctx.output(f"{z}_rms") for z in self._levels]
        if all(v is not None for v in per_seq):
            # Every sequence has as many elements: the batch RMS is the RMS of the per-sequence
            # RMS, i.e. the norm of their vector over sqrt(B).
            per_seq = torch.stack(per_seq)  # (2, B)
            rms = torch.linalg.vector_norm(per_seq, dim=1, dtype=torch.float32)
            rms = rms / math.sqrt(per_seq.shape[1])  # (2,)
        elif ctx.carry_states is not None:
            rms = torch.stack([_rms(z) for z in ctx.carry_states])
        else:
            return None
        return dict(zip(self.names(), rms.unbind(0), strict=True))


class StateDelta(_CarryQuantity):
    """state/z_H/delta_rms, state/z_L/delta_rms (TRM: state/y/delta_rms, state/z/delta_rms): RMS
    of each carry's change over one ACT segment (TRM: one supervision step), over the sequences
    that continue (NaN when every slot started a new example).

    What it reveals: the fixed-point residual. A recurrence whose residual falls to ~0 has
    stopped reasoning (possibly trapped in a wrong fixed point, Ren & Liu 2026); one that never
    settles oscillates and its answers flicker between segments.
    Why it matters for HRM: HRM's premise is convergence of L within a cycle and of H across
    cycles; users ask to halt on this residual. For TRM, an answer y that stops changing
    across supervision steps while still wrong is the failure of deep supervision.
    Remedy: residual ~0 with low accuracy -> more cycles or more exploration; never settling
    -> lower lr, fewer cycles.
    Cost: as StateRMS, plus the previous carry kept by reference for models without
    `record_state_stats`.
    """

    def setup(self, target: ProbeTarget) -> bool:
        super().setup(target)
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self._previous_step: int | None = None
        self._fallback: torch.Tensor | None = None
        return True

    def names(self) -> list[str]:
        return [f"state/{z}/delta_rms" for z in self._levels]

    def observe(self, ctx: StepContext) -> None:
        """Without per-sequence deltas in the outputs: difference with the previous carry."""
        self._fallback = None
        if any(ctx.output(f"{z}_delta_rms") is None for z in self._levels):
            states = ctx.carry_states
            prev = self._previous
            if (
                states is not None
                and prev is not None
                and self._previous_step == ctx.step - 1
                and prev[0].shape == states[0].shape
            ):
                self._fallback = torch.stack(
                    [_per_sequence_rms(now - before) for now, before in zip(states, prev)]
                )  # (2, B)
            self._previous, self._previous_step = states, ctx.step

    def collect(self, ctx: StepContext) -> Metrics | None:
        per_seq = [ctx.output(f"{z}_delta_rms") for z in self._levels]
        if all(v is not None for v in per_seq):
            rms = torch.stack(per_seq)  # (2, B) per-sequence RMS of the change
        elif self._fallback is not None:
            rms = self._fallback
        else:
            return None
        reset = ctx.reset
        if reset is None:
            delta = torch.linalg.vector_norm(rms, dim=1, dtype=torch.float32)
            delta = delta / math.sqrt(rms.shape[1])
        else:
            kept = rms.masked_fill(reset, 0.0)  # (2, B): the slots that started anew left out
            delta = torch.linalg.vector_norm(kept, dim=1, dtype=torch.float32)
            delta = delta / (~reset).sum().sqrt()  # 0/0 -> NaN
        return dict(zip(self.names(), delta.unbind(0), strict=True))
