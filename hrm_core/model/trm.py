"""TRM, the Tiny Recursive Model (Jolicoeur-Martineau 2025, "Less is More: Recursive Reasoning
with Tiny Networks"; code SamsungSAILMontreal/TinyRecursiveModels): one tiny network that
recursively refines a latent z and an answer y, under HRM's deep supervision and ACT.

What differs from HRM-ACT v1 (docs/trm.md): one network of L_layers (2) blocks does both
updates, z <- net(z, y + x) L_cycles times then y <- net(y, z), and the answer update sees no
input; H_cycles - 1 rounds run without gradient and the last round keeps its whole graph (not
the one-step gradient); the `mlp_t` block mixes tokens with an MLP over the sequence instead of
attention; the puzzle embedding takes 16 prefix positions; halting is q_halt > 0 with no
Q-continue target (unless `no_ACT_continue` is false). The carry keeps HRM's names and layout
(z_H holds y, z_L holds z), so checkpoints and the probe's fallbacks read both models alike.
"""

from __future__ import annotations

import torch
from torch import nn

from hrm_core.model.config import HRMConfig, TRMConfig
from hrm_core.model.hrm import HRMACT, HRMReasoningCore, Rope
from hrm_core.model.layers import Attention, ReasoningModule, SwiGLU, rms_norm


class TRMBlock(nn.Module):
    """Post-norm block: token mixing (self-attention, or `mlp_t`: a SwiGLU across positions),
    then a SwiGLU across features; x = rmsnorm(x + mix(x)); x = rmsnorm(x + mlp(x))."""

    def __init__(self, config: TRMConfig) -> None:
        super().__init__()
        self.use_mlp_t = config.mlp_t
        if config.mlp_t:
            # Over the sequence axis: its "hidden size" is the number of positions.
            self.mlp_t = SwiGLU(config.num_positions, config.expansion)
        else:
            self.self_attn = Attention(config.hidden_size, config.num_heads)
        self.mlp = SwiGLU(config.hidden_size, config.expansion)
        self.eps = config.rms_norm_eps

    def forward(self, x: torch.Tensor, rope: Rope) -> torch.Tensor:
        if self.use_mlp_t:
            x = x.transpose(1, 2)  # (B, D, P): positions become the features
            x = rms_norm(x + self.mlp_t(x), self.eps).transpose(1, 2)  # back to (B, P, D)
        else:
            x = rms_norm(x + self.self_attn(x, rope), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class TRMReasoningCore(HRMReasoningCore):
    """HRM's embeddings, heads and carry around one tiny network. The network keeps the
    reference's name `L_level`, so reference checkpoints load."""

    def build_levels(self, config: HRMConfig) -> None:
        assert isinstance(config, TRMConfig)
        self.L_level = ReasoningModule(config, config.L_layers, block=TRMBlock)

    def recurse(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """H_cycles rounds of (L_cycles updates of the latent z, then one of the answer y).

        y is z_H and z is z_L. The first H_cycles - 1 rounds run under no_grad; the last round
        is backpropagated through all its L_cycles + 1 network calls (TRM's gradient, where
        HRM keeps only the last L and the last H update).
        """
        cfg, net = self.config, self.L_level
        y, z = z_H, z_L
        with torch.no_grad():
            for _ in range(cfg.H_cycles - 1):
                for _ in range(cfg.L_cycles):
                    z = net(z, y + x, rope)
                y = net(y, z, rope)  # the answer update sees no input
        for _ in range(cfg.L_cycles):
            z = net(z, y + x, rope)
        y = net(y, z, rope)
        return y, z


class TRMACT(HRMACT):
    """TRM with deep supervision and ACT: one call is one supervision step (the carry detached
    between steps, a new optimizer step each); halting by q_halt > 0 (the simplified loss,
    `no_ACT_continue`), or HRM's Q-learning when that switch is off."""

    arch_name = "trm"
    core_class = TRMReasoningCore
    state_names = ("y", "z")

    def __init__(self, config: HRMConfig) -> None:
        if not isinstance(config, TRMConfig):
            raise TypeError("TRMACT needs a TRMConfig")
        super().__init__(config)

    @staticmethod
    def uses_q_continue(config: HRMConfig) -> bool:
        # The reference's continue branch (no_ACT_continue false) unpacks five values from
        # the inner model's three: it cannot run there. Here it is HRM's target, as intended.
        return not getattr(config, "no_ACT_continue", True)
