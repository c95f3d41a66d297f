"""Layer-level checks: init, RMSNorm, RoPE, attention, SwiGLU width, post-norm, casting."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hrm_core.model.layers import (
    Attention,
    CastedEmbedding,
    CastedLinear,
    PostNormBlock,
    RotaryEmbedding,
    apply_rope,
    rms_norm,
    swiglu_inner_size,
    trunc_normal_,
)


def test_trunc_normal_is_variance_corrected_and_cut_at_two_sigma() -> None:
    torch.manual_seed(0)
    x = trunc_normal_(torch.empty(400_000), std=0.5)
    assert abs(x.std().item() - 0.5) < 0.005  # the *actual* std is the requested one
    # Cut at 2 sigma of the (wider) sampling normal: 0.5 / 0.8796 * 2 = 1.137.
    assert x.abs().max().item() <= 2 * 0.5 / 0.87962 + 1e-4
    assert x.abs().max().item() > 1.1
    assert torch.equal(trunc_normal_(torch.ones(5), std=0.0), torch.zeros(5))


def test_rms_norm_has_no_gain_runs_in_fp32_and_keeps_dtype() -> None:
    x = torch.randn(3, 5, 16) * 7
    y = rms_norm(x, eps=1e-5)
    assert torch.allclose(y.square().mean(-1), torch.ones(3, 5), atol=1e-4)
    expected = x / torch.sqrt(x.square().mean(-1, keepdim=True) + 1e-5)
    assert torch.allclose(y, expected, atol=1e-6)
    assert rms_norm(x.bfloat16(), 1e-5).dtype == torch.bfloat16


def test_swiglu_inner_width_matches_reference() -> None:
    assert swiglu_inner_size(512, 4) == 1536
    assert swiglu_inner_size(64, 4) == 256
    assert swiglu_inner_size(1024, 4) == 2816


def test_casted_linear_keeps_fp32_master_and_casts_to_input_dtype() -> None:
    torch.manual_seed(0)
    layer = CastedLinear(256, 512, bias=True)
    assert layer.weight.dtype == torch.float32
    assert abs(layer.weight.std().item() - 1 / 16) < 0.002  # LeCun: 1/sqrt(fan_in)
    assert torch.equal(layer.bias, torch.zeros(512))
    out = layer(torch.randn(2, 256).bfloat16())
    assert out.dtype == torch.bfloat16
    assert layer.weight.dtype == torch.float32
    emb = CastedEmbedding(10, 8, init_std=0.1)
    assert emb(torch.tensor([1, 2]), torch.bfloat16).dtype == torch.bfloat16


def test_rope_rotates_pairs_and_depends_only_on_relative_position() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=8, num_positions=6, theta=10000.0)
    cos, sin = rope()
    q = torch.randn(1, 1, 1, 8).expand(1, 6, 1, 8)  # the same vector at every position
    k = torch.randn(1, 1, 1, 8).expand(1, 6, 1, 8)
    q_rot, k_rot = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    assert torch.allclose(q_rot[0, 0], q[0, 0])  # position 0: identity
    assert torch.allclose(q_rot.norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # a rotation
    dots = torch.einsum("bphd,bqhd->pq", q_rot, k_rot)
    assert torch.allclose(dots[1, 3], dots[2, 4], atol=1e-5)  # offset 2 both times
    # Half-split layout: dim i pairs with dim i + head_dim/2, frequency theta^(-2i/d).
    angle = 3 * 10000.0 ** (-2 * 1 / 8)
    assert math.isclose(cos[3, 1].item(), math.cos(angle), rel_tol=1e-5)
    assert math.isclose(sin[3, 5].item(), math.sin(angle), rel_tol=1e-5)


def test_attention_is_non_causal_and_matches_explicit_softmax_attention() -> None:
    torch.manual_seed(0)
    attn = Attention(hidden_size=16, num_heads=2)
    x = torch.randn(2, 5, 16)
    out = attn(x, None)
    q, k, v = attn.qkv_proj(x).view(2, 5, 6, 8).split(2, dim=2)
    scores = torch.einsum("bphd,bqhd->bhpq", q, k) / math.sqrt(8)
    expected = torch.einsum("bhpq,bqhd->bphd", scores.softmax(-1), v).reshape(2, 5, 16)
    assert torch.allclose(out, attn.o_proj(expected), atol=1e-5)
    x2 = x.clone()
    x2[:, -1] += 1.0  # a change at the LAST position reaches the FIRST: no causal mask
    assert not torch.allclose(attn(x2, None)[:, 0], out[:, 0])


def test_post_norm_block_output_is_normalised(make_config) -> None:
    torch.manual_seed(0)
    block = PostNormBlock(make_config())
    y = block(torch.randn(2, 7, 32) * 10, None)
    assert torch.allclose(y.square().mean(-1), torch.ones(2, 7), atol=1e-4)
    x = torch.randn(2, 7, 32)
    h = rms_norm(x + block.self_attn(x, None), 1e-5)
    gate, up = block.mlp.gate_up_proj(h).chunk(2, dim=-1)
    expected = rms_norm(h + block.mlp.down_proj(F.silu(gate) * up), 1e-5)
    assert torch.allclose(block(x, None), expected, atol=1e-6)
