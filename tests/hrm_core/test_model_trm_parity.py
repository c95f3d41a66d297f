"""TRM against the reference: the same weights and inputs give the same losses, metrics, logits,
halting and gradients as SamsungSAILMontreal/TinyRecursiveModels on the CPU.

`fixtures/trm_reference.json` holds what the reference's own model and loss head produced (run
outside the project on three tiny configs: attention + RoPE, `mlp_t` without positions and a
zero-padded puzzle prefix, learned positions). Weights are not stored: both sides fill every
tensor of the state dict from a generator seeded by the tensor's name, and gradients are
compared through their norm and their dot product with a seeded random vector per tensor.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from hrm_core.model import ACTLossHead, TRMConfig, build_model

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "trm_reference.json").read_text())
VARIANTS = sorted(FIXTURE["variants"])
ATOL = 1e-5


def seeded(name: str, shape: torch.Size) -> torch.Tensor:
    """The generator's weights: N(0, 1) from a name-seeded generator, scaled by kind."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if name.endswith("puzzle_emb.weights"):
        scale = 0.5
    elif len(shape) == 2:
        scale = 1 / math.sqrt(shape[-1])
    elif name.endswith("q_head.bias"):
        scale = 0.5
    else:
        scale = 1.0
    return (x * scale).float()


def probe_vec(name: str, shape: torch.Size) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + 1)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def make_batch(cfg: dict, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (cfg["batch_size"], cfg["seq_len"])
    labels = torch.randint(0, cfg["vocab_size"], shape, generator=g)
    labels[0, :3] = -100
    return {
        "inputs": torch.randint(0, cfg["vocab_size"], shape, generator=g).to(torch.int32),
        "labels": labels,
        "puzzle_identifiers": torch.randint(
            0, cfg["num_puzzle_identifiers"], (cfg["batch_size"],), generator=g
        ).to(torch.int32),
    }


def reference_model(name: str) -> tuple[ACTLossHead, dict, dict]:
    variant = FIXTURE["variants"][name]
    cfg = variant["config"]
    model = build_model("trm", TRMConfig(**cfg))
    weights = {k: seeded(k, t.shape) for k, t in model.state_dict().items()}
    if variant["q_halt_bias"] is not None:
        weights["inner.q_head.bias"][0] = variant["q_halt_bias"]
    model.load_state_dict(weights, strict=True)  # the reference's names, every one
    return ACTLossHead(model, "stablemax_cross_entropy"), cfg, variant


def close(ours: torch.Tensor | float, expected: list[float] | float) -> bool:
    ours_t = torch.as_tensor(ours, dtype=torch.float64).flatten()
    return torch.allclose(ours_t, torch.tensor(expected, dtype=torch.float64).flatten(),
                          atol=ATOL, rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_matches_the_reference(name):
    head, _, variant = reference_model(name)
    assert sum(p.numel() for p in head.parameters()) == variant["num_params"]


@pytest.mark.parametrize("name", VARIANTS)
def test_training_segments_match_the_reference(name):
    """Three supervision steps on one batch: loss, metrics, logits, q_halt, halting, carry and
    every parameter's gradient (backward of each step's loss alone)."""
    head, cfg, variant = reference_model(name)
    head.train()
    batch = make_batch(cfg, 1)
    carry = head.initial_carry(batch)
    params = dict(head.named_parameters())
    for expected in variant["train"]:
        carry, loss, metrics, outputs, _ = head(carry, batch)
        loss.backward()
        assert close(loss.item(), expected["loss"])
        for key, value in expected["metrics"].items():
            assert close(metrics[key].item(), value), key
        assert close(outputs["logits"], expected["logits"])
        assert close(outputs["q_halt_logits"], expected["q_halt_logits"])
        assert carry.halted.tolist() == expected["halted"]
        assert carry.steps.tolist() == expected["steps"]
        assert close(carry.inner_carry.z_H.double().norm().item(), expected["z_H"][0])
        assert close(carry.inner_carry.z_L.double().norm().item(), expected["z_H"][1])
        for pname, stats in expected["grads"].items():
            if pname == "puzzle_emb.local_weights":
                grad = head.model.puzzle_emb.local_weights.grad
                vec = probe_vec("pe", grad.shape)
            else:
                grad = params[pname].grad
                vec = probe_vec(pname, grad.shape) if grad is not None else None
            if stats is None:  # the reference has no gradient there (q_head's continue row)
                assert grad is None or grad.abs().max() == 0, pname
                continue
            assert close(grad.double().norm().item(), stats[0]), pname
            assert close((grad.double() * vec).sum().item(), stats[1]), pname
        head.zero_grad(set_to_none=True)
        head.model.puzzle_emb.local_weights.grad = None


@pytest.mark.parametrize("name", VARIANTS)
def test_evaluation_matches_the_reference(name):
    head, cfg, variant = reference_model(name)
    head.eval()
    batch = make_batch(cfg, 1)
    with torch.inference_mode():
        carry = head.initial_carry(batch)
        for _ in range(cfg["halt_max_steps"]):
            carry, loss, metrics, outputs, done = head(carry, batch)
    expected = variant["eval"]
    assert bool(done) == expected["done"]
    assert close(loss.item(), expected["loss"])
    for key, value in expected["metrics"].items():
        assert close(metrics[key].item(), value), key
    assert close(outputs["logits"], expected["logits"])


@pytest.mark.parametrize("name", VARIANTS)
def test_weight_ema_matches_the_reference_helper(name):
    """The reference EMAHelper(mu=0.9) over two made-up updates of every parameter."""
    from hrm_core.optim import WeightEMA

    head, _, variant = reference_model(name)
    ema = WeightEMA(head, variant["ema_mu"])
    with torch.no_grad():
        for k in range(2):
            for pname, p in head.named_parameters():
                p.add_(probe_vec(pname, p.shape).float() * 0.01 * (k + 1))
            ema.update()
    sums = {n: t.double().sum().item() for n, t in ema.state_dict()["shadow"].items()}
    assert sums.keys() == variant["ema_sums"].keys()
    for pname, value in variant["ema_sums"].items():
        assert close(sums[pname], value), pname
