"""The probe on TRM: what exists is reported under TRM's names (y and z carries, EMA distance),
what does not (H, Q-continue) is not; each new quantity against a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hrm_core.model import ACTLossHead, TRMConfig, build_model
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD, WeightEMA
from hrm_core.probe import Probe, metrics_to_host


def tiny_trm(seed: int = 0, batch_size: int = 12):
    torch.manual_seed(seed)
    config = TRMConfig(vocab_size=6, seq_len=8, num_puzzle_identifiers=5, batch_size=batch_size,
                       H_cycles=2, L_cycles=2, L_layers=2, hidden_size=32, num_heads=2,
                       expansion=2.0, halt_max_steps=3, halt_exploration_prob=0.3,
                       forward_dtype="float32", puzzle_emb_len=1)  # fmt: skip
    model = build_model("trm", config)
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([0.0, 0.0]))  # halts sometimes
    head = ACTLossHead(model).train()
    gen = torch.Generator().manual_seed(seed)
    shape = (batch_size, config.seq_len)
    batch = {
        "inputs": torch.randint(0, 6, shape, generator=gen),
        "labels": torch.randint(1, 6, shape, generator=gen),
        "puzzle_identifiers": torch.randint(0, 3, (batch_size,), generator=gen),
    }
    opt = AdamAtan2(model.parameters(), lr=1e-2, weight_decay=0.1)
    emb_opt = CastedSparseEmbeddingSignSGD(model.puzzle_emb, lr=0.05, weight_decay=0.1)
    return head, opt, emb_opt, batch


def steps(probe_factory, n: int = 4, ema_rate: float = 0.9):
    head, opt, emb_opt, batch = tiny_trm()
    ema = WeightEMA(head.model, ema_rate)
    probe = probe_factory(head, {"model": opt, "puzzle_emb": emb_opt, "ema": ema})
    carry = head.initial_carry(batch)
    out = []
    for step in range(1, n + 1):
        carry, loss, _, outputs, _ = head(carry, batch)
        (loss / 12).backward()
        probe.before_step(step, loss=loss)
        opt.step()
        emb_opt.step()
        ema.update()
        probe.after_step(step)
        host = metrics_to_host(probe.collect(step, outputs=outputs, carry=carry))
        opt.zero_grad()
        emb_opt.zero_grad()
        weights = [p.detach().double() for p in head.model.parameters()]
        diff = math.sqrt(sum(float((s.double() - w).square().sum())
                             for s, w in zip(ema.shadow, weights, strict=True)))  # fmt: skip
        norm = math.sqrt(sum(float(w.square().sum()) for w in weights))
        out.append((host, outputs, carry.steps.clone(), diff / norm))
    return probe, out


def test_trm_names_what_exists_and_nothing_else():
    probe, out = steps(lambda h, o: Probe(h, o, tier="full", tensor_every=1))
    names = set(probe.names())
    assert {"state/y/rms", "state/z/rms", "state/y/delta_rms", "state/z/delta_rms"} <= names
    assert {"ema/param_dist", "act/lm_loss_by_step", "act/q_halt/mean"} <= names
    assert not {n for n in names if "z_H" in n or "z_L" in n or "q_continue" in n}
    assert not {n for n in names if n.startswith("grad/norm/H")}
    assert {"grad/norm/L", "grad/norm/L.0", "grad/norm/L.1"} <= names
    for host, *_ in out[1:]:
        assert set(host) == names


def test_ema_distance_matches_the_definition():
    _, out = steps(lambda h, o: Probe(h, o, tier="standard"))
    for host, _, _, expected in out:
        assert host["ema/param_dist"] == pytest.approx(expected, rel=1e-4)
    assert 0 < out[-1][0]["ema/param_dist"] < 1


def test_ema_distance_of_the_reference_helper():
    """The reference's EMAHelper keeps {name: average} and mu; the probe measures it directly."""

    class ReferenceEMA:
        def __init__(self, module, mu):
            self.mu = mu
            self.shadow = {n: p.detach().clone() for n, p in module.named_parameters()}

        def update(self, module):
            for n, p in module.named_parameters():
                self.shadow[n] = (1 - self.mu) * p.detach() + self.mu * self.shadow[n]

    head, opt, emb_opt, batch = tiny_trm()
    ref = ReferenceEMA(head, 0.9)
    ours = WeightEMA(head.model, 0.9)
    probe = Probe(head, {"model": opt, "ema": ref}, tier="standard")
    carry = head.initial_carry(batch)
    for step in (1, 2, 3):
        carry, loss, _, outputs, _ = head(carry, batch)
        loss.backward()
        opt.step()
        ref.update(head)
        ours.track_distance = True
        ours.update()
        host = probe.step(step, outputs, carry)
        opt.zero_grad()
        assert host["ema/param_dist"] == pytest.approx(float(ours.last_distance), rel=1e-4)


def test_loss_by_supervision_step_matches_a_loop():
    _, out = steps(lambda h, o: Probe(h, o, tier="cheap", tensor_every=1))
    for host, outputs, carry_steps, _ in out:
        expected = []
        for k in (1, 2, 3):
            at = carry_steps == k
            expected.append(float(outputs["seq_lm_loss"][at].mean()) if at.any() else math.nan)
        np.testing.assert_allclose(host["act/lm_loss_by_step"], expected, rtol=1e-5)
