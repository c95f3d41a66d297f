"""Transformer building blocks of HRM: casted layers, gain-free RMSNorm, RoPE, attention, SwiGLU.

Weights are fp32 masters cast to the compute dtype on the fly (HRM_NOTES "Model", last bullet);
attention goes through `scaled_dot_product_attention`, so CPU, CUDA and MPS all work.
Parameter names match the reference checkpoints (qkv_proj, o_proj, gate_up_proj, down_proj, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hrm_core.model.config import HRMConfig

TRUNC_CUTOFF = 2.0
"""Truncation point of the init normal, in standard deviations (HRM_NOTES "Init")."""


def trunc_normal_(
    tensor: torch.Tensor, std: float = 1.0, cutoff: float = TRUNC_CUTOFF
) -> torch.Tensor:
    """Fill `tensor` from a normal truncated at +-cutoff sigma whose *actual* std is `std`.

    Truncation shrinks the variance of N(0, s^2) by 1 - 2c*phi(c)/(2*Phi(c)-1); the sampling
    std is scaled up by that factor so the result has std `std` (variance-corrected, as the
    reference's JAX-style init). std == 0 gives zeros.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        pdf_at_cutoff = math.exp(-0.5 * cutoff * cutoff) / math.sqrt(2 * math.pi)
        mass_inside = math.erf(cutoff / math.sqrt(2))
        shrink = math.sqrt(1.0 - 2.0 * cutoff * pdf_at_cutoff / mass_inside)
        sample_std = std / shrink
        return nn.init.trunc_normal_(
            tensor, mean=0.0, std=sample_std, a=-cutoff * sample_std, b=cutoff * sample_std
        )


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm without a learned gain, computed in fp32, returned in the input dtype."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.square().mean(dim=-1, keepdim=True) + eps)
    return x32.to(x.dtype)


def swiglu_inner_size(hidden_size: int, expansion: float) -> int:
    """Reference SwiGLU width: round(expansion*hidden*2/3) rounded up to a multiple of 256."""
    width = round(expansion * hidden_size * 2 / 3)
    return -(-width // 256) * 256


class CastedLinear(nn.Module):
    """Linear layer with an fp32 master weight (LeCun truncated-normal init) cast to the input dtype."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            trunc_normal_(torch.empty(out_features, in_features), std=1.0 / math.sqrt(in_features))
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table with an fp32 master weight, looked up and cast to the compute dtype."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float) -> None:
        super().__init__()
        self.embedding_weight = nn.Parameter(
            trunc_normal_(torch.empty(num_embeddings, embedding_dim), std=init_std)
        )

    def forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(dtype))


class RotaryEmbedding(nn.Module):
    """Precomputed RoPE cos/sin tables (fp32, non-persistent) over all carry positions."""

    def __init__(self, head_dim: int, num_positions: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(num_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (P, head_dim): half-split layout
        self.register_buffer("cos_cached", angles.cos(), persistent=False)
        self.register_buffer("sin_cached", angles.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos_cached, self.sin_cached


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, P, heads, head_dim) by position, in fp32; halves are paired (x1, x2)."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # (P, 1, head_dim): broadcast over heads
    return (x32 * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention: fused qkv projection, no GQA, no biases."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = CastedLinear(hidden_size, hidden_size, bias=False)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        batch, positions, hidden = x.shape
        qkv = self.qkv_proj(x).view(batch, positions, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)  # each (B, P, heads, head_dim)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=False
        )  # (B, heads, P, head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(batch, positions, hidden))


class SwiGLU(nn.Module):
    """SwiGLU MLP with the reference inner width (fused gate/up projection, no biases)."""

    def __init__(self, hidden_size: int, expansion: float) -> None:
        super().__init__()
        inner = swiglu_inner_size(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * inner, bias=False)
        self.down_proj = CastedLinear(inner, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class PostNormBlock(nn.Module):
    """x = rmsnorm(x + attn(x)); x = rmsnorm(x + mlp(x))  (post-norm, HRM_NOTES "Block")."""

    def __init__(self, config: HRMConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config.hidden_size, config.num_heads)
        self.mlp = SwiGLU(config.hidden_size, config.expansion)
        self.eps = config.rms_norm_eps

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        x = rms_norm(x + self.self_attn(x, rope), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """One HRM level (H or L), or TRM's one network (`block`: its TRMBlock): add the injection
    to the state, then run its blocks."""

    def __init__(
        self, config: HRMConfig, num_layers: int, block: Callable[[Any], nn.Module] | None = None
    ) -> None:
        super().__init__()
        make = block or PostNormBlock
        self.layers = nn.ModuleList(make(config) for _ in range(num_layers))

    def forward(
        self,
        state: torch.Tensor,
        injection: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        state = state + injection
        for layer in self.layers:
            state = layer(state, rope)
        return state
