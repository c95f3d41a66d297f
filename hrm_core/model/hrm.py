"""HRM-ACT v1: the two-level recurrent core (one-step gradient) and its ACT/Q-learning wrapper.

Behaviour follows HRM_NOTES "Model (HRM-ACT-v1)" and "ACT and the loss" point by point; the
ACT step also returns, from the same forward pass, what the probe needs (Q logits, target,
halting steps, carry RMS and per-sequence change). No host-device sync happens in here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hrm_core.model.config import HRMConfig
from hrm_core.model.layers import (
    CastedEmbedding,
    CastedLinear,
    ReasoningModule,
    RotaryEmbedding,
    trunc_normal_,
)
from hrm_core.model.sparse_embedding import CastedSparseEmbedding

Batch = dict[str, torch.Tensor]
Rope = tuple[torch.Tensor, torch.Tensor] | None

Q_HEAD_INIT_BIAS = -5.0
"""q_head bias at init: the model starts out (almost) never choosing to halt (HRM_NOTES "Init")."""


@dataclass
class InnerCarry:
    """Recurrent states z_H, z_L: (B, seq_len + puzzle_emb_len, hidden), in the compute dtype."""

    z_H: torch.Tensor
    z_L: torch.Tensor


@dataclass
class ACTCarry:
    """Everything that persists across ACT segments (= optimizer steps) for a batch of slots."""

    inner_carry: InnerCarry
    steps: torch.Tensor
    """(B,) int32: segments run so far on the example in each slot."""
    halted: torch.Tensor
    """(B,) bool: the slot halted last segment, so the next call resets it and loads a new example."""
    current_data: Batch
    """The examples the slots are working on (inputs, labels, puzzle_identifiers, ...)."""

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensor dict, for checkpoints (resume continues every slot exactly)."""
        flat = {
            "z_H": self.inner_carry.z_H,
            "z_L": self.inner_carry.z_L,
            "steps": self.steps,
            "halted": self.halted,
        }
        flat.update({f"data.{k}": v for k, v in self.current_data.items()})
        return flat

    @classmethod
    def from_dict(cls, flat: dict[str, torch.Tensor]) -> ACTCarry:
        data = {k[len("data.") :]: v for k, v in flat.items() if k.startswith("data.")}
        return cls(InnerCarry(flat["z_H"], flat["z_L"]), flat["steps"], flat["halted"], data)


def resolve_compute_dtype(forward_dtype: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA (as the reference), float32 on CPU/MPS; else the named dtype."""
    if forward_dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, forward_dtype)


class HRMReasoningCore(nn.Module):
    """The inner HRM: embeddings, H and L modules, lm_head and q_head; one call = one segment."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.embed_scale = math.sqrt(hidden)
        self.puzzle_emb_len = config.prefix_len
        init_std = (
            1.0 / self.embed_scale
        )  # token embeddings: std 1/sqrt(hidden), then * sqrt(hidden)

        self.embed_tokens = CastedEmbedding(config.vocab_size, hidden, init_std=init_std)
        self.lm_head = CastedLinear(hidden, config.vocab_size, bias=False)
        self.q_head = CastedLinear(hidden, 2, bias=True)
        if config.puzzle_emb_ndim > 0:
            self.puzzle_emb = CastedSparseEmbedding(
                config.num_puzzle_identifiers, config.puzzle_emb_ndim, config.batch_size
            )
        if config.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(
                config.head_dim, config.num_positions, config.rope_theta
            )
        elif config.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(config.num_positions, hidden, init_std=init_std)

        self.build_levels(config)
        # Fixed, untrained states a slot is reset to when it halts (truncated normal, std 1).
        self.register_buffer("H_init", trunc_normal_(torch.empty(hidden), std=1.0))
        self.register_buffer("L_init", trunc_normal_(torch.empty(hidden), std=1.0))

        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(Q_HEAD_INIT_BIAS)

    def build_levels(self, config: HRMConfig) -> None:
        """The recurrent modules: H and L, each a stack of post-norm transformer blocks."""
        self.H_level = ReasoningModule(config, config.H_layers)
        self.L_level = ReasoningModule(config, config.L_layers)

    # Helpers ---------------------------------------------------------------------------------

    def compute_dtype(self) -> torch.dtype:
        return resolve_compute_dtype(self.config.forward_dtype, self.H_init.device)

    def rope(self) -> Rope:
        return self.rotary_emb() if self.config.pos_encodings == "rope" else None

    def input_embeddings(
        self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """(B, seq) ids -> (B, puzzle_emb_len + seq, hidden): puzzle prefix, positions, scale."""
        embedding = self.embed_tokens(inputs, dtype)  # (B, seq, D)
        if self.config.puzzle_emb_ndim > 0:
            batch, hidden = inputs.shape[0], self.config.hidden_size
            prefix = self.puzzle_emb(puzzle_identifiers, dtype)  # (B, puzzle_emb_ndim)
            pad = self.puzzle_emb_len * hidden - prefix.shape[-1]
            if pad > 0:
                prefix = F.pad(prefix, (0, pad))  # zero-pad to whole positions
            prefix = prefix.view(batch, self.puzzle_emb_len, hidden)  # (B, puzzle_emb_len, D)
            embedding = torch.cat((prefix, embedding), dim=1)
        if self.config.pos_encodings == "learned":
            # Learned positions: add the table, keep the variance with 1/sqrt(2).
            embedding = (embedding + self.embed_pos.embedding_weight.to(dtype)) * math.sqrt(0.5)
        return self.embed_scale * embedding

    def empty_carry(self, batch_size: int, device: torch.device) -> InnerCarry:
        shape = (batch_size, self.config.num_positions, self.config.hidden_size)
        dtype = self.compute_dtype()
        return InnerCarry(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )

    def reset_carry(self, reset: torch.Tensor, carry: InnerCarry) -> InnerCarry:
        """Slots with reset=True get the fixed init states; the others keep theirs."""
        mask = reset.view(-1, 1, 1)
        return InnerCarry(
            torch.where(mask, self.H_init.to(carry.z_H.dtype), carry.z_H),
            torch.where(mask, self.L_init.to(carry.z_L.dtype), carry.z_L),
        )

    # The recurrence --------------------------------------------------------------------------

    def recurse(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """H_cycles x (L_cycles L-updates, then one H-update), with the one-step gradient.

        Every update but the last L- and the last H-update runs under no_grad (HRM_NOTES
        "One call of the inner model"), so backward touches the parameters only through those
        two. L is injected with z_H + input; H with z_L: raw input never reaches H directly.
        """
        cfg = self.config
        with torch.no_grad():
            for h_step in range(cfg.H_cycles):
                for l_step in range(cfg.L_cycles):
                    is_final_l = h_step == cfg.H_cycles - 1 and l_step == cfg.L_cycles - 1
                    if not is_final_l:
                        z_L = self.L_level(z_L, z_H + x, rope)
                if h_step != cfg.H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, rope)
        z_L = self.L_level(z_L, z_H + x, rope)
        z_H = self.H_level(z_H, z_L, rope)
        return z_H, z_L

    def forward(
        self, carry: InnerCarry, batch: Batch
    ) -> tuple[InnerCarry, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One segment: (carry, batch) -> (detached new carry, logits, (q_halt, q_continue))."""
        dtype = self.compute_dtype()
        x = self.input_embeddings(batch["inputs"], batch["puzzle_identifiers"], dtype)
        z_H, z_L = self.recurse(carry.z_H, carry.z_L, x, self.rope())
        logits = self.lm_head(z_H)[:, self.puzzle_emb_len :]  # (B, seq, vocab): prefix dropped
        q_logits = self.q_head(z_H[:, 0].float())  # (B, 2), fp32 from position 0
        # Detached: no gradient crosses ACT segments.
        new_carry = InnerCarry(z_H.detach(), z_L.detach())
        return new_carry, logits, (q_logits[..., 0], q_logits[..., 1])


def _rms_per_sequence(z: torch.Tensor) -> torch.Tensor:
    """(B, P, D) -> (B,) fp32 root-mean-square over positions and features."""
    return z.float().square().mean(dim=(1, 2)).sqrt()


class HRMACT(nn.Module):
    """HRM with Adaptive Computation Time: Q-learned halting over segments of the inner core.

    `carry = model.initial_carry(batch)`; then each step `carry, outputs = model(carry, batch)`.
    `halt_exploration_prob` is a plain attribute read at every call: a live patch may change it.
    """

    arch_name = "hrm_v1"
    core_class: type[nn.Module] = HRMReasoningCore
    state_names: tuple[str, str] = ("z_H", "z_L")
    """Telemetry names of the two carries (state/NAME/rms), in InnerCarry order."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.config = config
        self.inner = self.core_class(config)
        self.continue_head = self.uses_q_continue(config)
        """Q-continue is trained on the bootstrapped target and halting compares against it."""
        self.halt_max_steps = config.halt_max_steps
        self.halt_exploration_prob = float(config.halt_exploration_prob)
        # Per-sequence carry RMS / change for the probe: a few reductions, on the device.
        self.record_state_stats = True

    @staticmethod
    def uses_q_continue(config: HRMConfig) -> bool:
        return True

    @property
    def puzzle_emb(self) -> CastedSparseEmbedding | None:
        """The sparse puzzle-embedding table (for its SignSGD optimizer), or None."""
        return getattr(self.inner, "puzzle_emb", None)

    def initial_carry(self, batch: Batch) -> ACTCarry:
        """All slots halted, so the first call loads the batch's examples into them."""
        batch_size = batch["inputs"].shape[0]
        device = batch["inputs"].device
        return ACTCarry(
            inner_carry=self.inner.empty_carry(batch_size, device),
            steps=torch.zeros(batch_size, dtype=torch.int32, device=device),
            halted=torch.ones(batch_size, dtype=torch.bool, device=device),
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(self, carry: ACTCarry, batch: Batch) -> tuple[ACTCarry, dict[str, torch.Tensor]]:
        """One ACT segment. Outputs, all (B, ...) device tensors from this one forward pass:

        logits (B, seq, vocab); q_halt_logits, q_continue_logits (B,) fp32 (the latter only
        with a continue head); target_q_continue (B,) fp32, training with a continue head only; halted (B,) bool; steps (B,) int32, segments used so far, so
        the halting step where `halted`; reset (B,) bool, slots that started a new example;
        z_H_rms, z_L_rms, z_H_delta_rms, z_L_delta_rms (B,) fp32 when `record_state_stats`
        (named by `state_names`).
        """
        reset = carry.halted  # (B,): these slots take the next example of `batch`
        before = self.inner.reset_carry(reset, carry.inner_carry)
        steps = torch.where(reset, 0, carry.steps)
        data = {
            k: torch.where(reset.view(-1, *([1] * (v.ndim - 1))), batch[k], v)
            for k, v in carry.current_data.items()
        }

        after, logits, (q_halt, q_continue) = self.inner(before, data)
        outputs: dict[str, torch.Tensor] = {"logits": logits, "q_halt_logits": q_halt}
        if self.continue_head:  # else the head's second logit is untrained: not an output
            outputs["q_continue_logits"] = q_continue

        with torch.no_grad():
            steps = steps + 1
            is_last_step = steps >= self.halt_max_steps
            halted = is_last_step  # evaluation: always exactly halt_max_steps segments
            if self.training and self.halt_max_steps > 1:
                # HRM: Q-learning's greedy choice; TRM's simplified halting: "I am right" > 0.5
                halted = halted | (q_halt > (q_continue if self.continue_head else 0.0))
                halted = self._explore(halted, steps)
                if self.continue_head:
                    outputs["target_q_continue"] = self._target_q_continue(
                        after, data, is_last_step
                    )
            outputs["halted"] = halted
            outputs["steps"] = steps
            outputs["reset"] = reset
            if self.record_state_stats:
                outputs.update(self._state_stats(before, after))

        new_carry = ACTCarry(after, steps.to(torch.int32), halted, data)
        return new_carry, outputs

    def _explore(self, halted: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """With prob. p per slot, draw a minimum halt step in [2, halt_max_steps]; no halt before it."""
        p = float(self.halt_exploration_prob)  # a Python float attribute: read fresh each call
        if p <= 0.0:
            return halted
        explore = torch.rand(steps.shape, device=steps.device) < p
        min_halt_steps = torch.randint(
            2, self.halt_max_steps + 1, steps.shape, device=steps.device, dtype=steps.dtype
        )
        return halted & ~(explore & (steps < min_halt_steps))

    def _target_q_continue(
        self, after: InnerCarry, data: Batch, is_last_step: torch.Tensor
    ) -> torch.Tensor:
        """Bootstrapped target (no grad): run the core once more on the new carry.

        sigmoid(next q_halt) at the last step, else sigmoid(max(next q_halt, next q_continue)).
        No replay buffer, no target network (HRM_NOTES "Target for Q-continue").
        """
        _, _, (next_q_halt, next_q_continue) = self.inner(after, data)
        return torch.sigmoid(
            torch.where(is_last_step, next_q_halt, torch.maximum(next_q_halt, next_q_continue))
        )

    def _state_stats(self, before: InnerCarry, after: InnerCarry) -> dict[str, torch.Tensor]:
        """(B,) fp32 RMS of each carry after the segment and of its change over the segment,
        named by `state_names` (z_H_rms, z_L_delta_rms ...; TRM: y_rms, z_delta_rms ...).

        For slots with `reset` True the change is measured from the init state.
        """
        first, second = self.state_names
        return {
            f"{first}_rms": _rms_per_sequence(after.z_H),
            f"{second}_rms": _rms_per_sequence(after.z_L),
            f"{first}_delta_rms": _rms_per_sequence(after.z_H.float() - before.z_H.float()),
            f"{second}_delta_rms": _rms_per_sequence(after.z_L.float() - before.z_L.float()),
        }


def module_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Parameters grouped as the telemetry names them: embed, H, L, q_head, lm_head, and per
    block H.0 ... L.3 (block groups overlap their level's group). The puzzle embedding is a
    buffer, not a parameter: its gradient is `model.puzzle_emb.local_weights.grad`."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, param in model.named_parameters():
        parts = name.split(".")
        if "inner" in parts:
            parts = parts[parts.index("inner") + 1 :]
        head = parts[0]
        if head in ("embed_tokens", "embed_pos"):
            groups.setdefault("embed", []).append((name, param))
        elif head in ("H_level", "L_level"):
            level = head[0]
            groups.setdefault(level, []).append((name, param))
            groups.setdefault(f"{level}.{parts[2]}", []).append((name, param))
        else:
            groups.setdefault(head, []).append((name, param))
    return groups
