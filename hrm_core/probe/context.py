"""What one probe hook call sees: the target, the step's outputs and carry, and shared partial
results (per-tensor and per-group norms) computed once per call however many quantities use
them."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import torch

from hrm_core.probe.target import ProbeTarget, tensor_norms

IGNORE_LABEL_ID = -100
"""Label id that the loss ignores (the reference's and hrm_core's)."""


class StepContext:
    """Inputs of one hook call. Everything derived is lazy and cached: no work, no sync, unless
    some quantity asks for it."""

    def __init__(
        self,
        target: ProbeTarget,
        step: int,
        outputs: Mapping[str, torch.Tensor] | None = None,
        carry: Any = None,
        loss: torch.Tensor | None = None,
    ) -> None:
        self.target = target
        self.step = step
        self.outputs = outputs or {}
        self.carry = carry
        self.loss = loss

    # Gradients and weights -------------------------------------------------------------------

    @cached_property
    def grads(self) -> list[torch.Tensor | None]:
        """Gradients of the parameters, then of the puzzle-embedding rows (None where absent)."""
        grads = [p.grad for p in self.target.params]
        if self.target.puzzle_emb is not None:
            grads.append(self.target.puzzle_emb_grad())
        return grads

    @cached_property
    def grad_tensor_norms(self) -> torch.Tensor | None:
        """(params [+ puzzle_emb] + 1,) per-tensor gradient norms (`tensor_norms`), 0 for a
        missing gradient; None if there is no gradient at all (after zero_grad, or before any
        backward)."""
        grads = self.grads
        present = [g for g in grads if g is not None]
        if not present:
            return None
        norms = tensor_norms(present)
        if len(present) == len(grads):
            return norms
        # Scatter into zeros at the present columns: an index_put, no host sync.
        index = self.target.columns_of(tuple(g is not None for g in grads), norms.device)
        return norms.new_zeros(len(grads) + 1).index_put_((index,), norms[:-1])

    @cached_property
    def grad_norms(self) -> dict[str, torch.Tensor] | None:
        """Gradient norm per reducer row ('' = all parameters, each group, puzzle_emb), as 0-d
        views of one vector; None without gradients. Shared by every gradient-norm quantity."""
        norms = self.grad_tensor_norms
        if norms is None:
            return None
        reducer = self.target.grad_reducer
        return reducer.named(reducer(norms))

    @cached_property
    def param_group_vector(self) -> torch.Tensor:
        """(groups,) weight norm per group, in `target.param_reducer` order. UpdateRatio, which
        runs first, sets it from its fused weights-and-updates norm when it is active."""
        return self.target.param_reducer(tensor_norms(self.target.params))

    @cached_property
    def param_norms(self) -> dict[str, torch.Tensor]:
        """Weight norm per group, as 0-d views."""
        return self.target.param_reducer.named(self.param_group_vector)

    # ACT outputs, with fallbacks for models that return less -------------------------------

    def output(self, key: str) -> torch.Tensor | None:
        value = self.outputs.get(key)
        return value if isinstance(value, torch.Tensor) else None

    @cached_property
    def halted(self) -> torch.Tensor | None:
        """(B,) bool: slots that halted this segment (outputs, else the new carry's `halted`)."""
        value = self.output("halted")
        if value is None:
            value = getattr(self.carry, "halted", None)
        return value

    @cached_property
    def halted_count(self) -> torch.Tensor | None:
        """0-d: how many slots halted this segment (shared by the halting fractions)."""
        return None if self.halted is None else self.halted.sum()

    @cached_property
    def steps(self) -> torch.Tensor | None:
        """(B,) segments used so far by each slot's example (outputs, else the new carry)."""
        value = self.output("steps")
        if value is None:
            value = getattr(self.carry, "steps", None)
        return value

    @cached_property
    def reset(self) -> torch.Tensor | None:
        """(B,) bool: slots that started a new example this segment (outputs, else steps == 1:
        the step counter restarts at 0 on a reset and counts this segment, in hrm_core as in
        the reference)."""
        value = self.output("reset")
        if value is None and self.steps is not None:
            value = self.steps == 1
        return value

    @cached_property
    def seq_is_correct(self) -> torch.Tensor | None:
        """(B,) bool: the slot's prediction is exactly right (outputs, else from the logits and
        the carry's labels, with the loss head's rule)."""
        value = self.output("seq_is_correct")
        if value is not None:
            return value
        logits = self.output("logits")
        data = getattr(self.carry, "current_data", None)
        labels = data.get("labels") if isinstance(data, Mapping) else None
        if logits is None or labels is None or logits.shape[:-1] != labels.shape:
            return None
        valid = labels != IGNORE_LABEL_ID  # (B, seq)
        right = (logits.argmax(-1) == labels) | ~valid
        return right.all(-1)

    @cached_property
    def carry_states(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(z_H, z_L) of the new carry, (B, positions, hidden), or None."""
        inner = getattr(self.carry, "inner_carry", self.carry)
        z_H, z_L = getattr(inner, "z_H", None), getattr(inner, "z_L", None)
        if isinstance(z_H, torch.Tensor) and isinstance(z_L, torch.Tensor):
            return z_H, z_L
        return None
