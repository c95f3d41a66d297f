"""Gradient and weight quantities against slow references: Python loops over the parameters,
float64 sums, groups from the model's own `module_groups`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hrm_core.model import module_groups
from hrm_core.probe import (
    GradNorm,
    GroupGradNorm,
    NonfiniteCount,
    Probe,
    metrics_to_host,
    parameter_group_names,
)


def l2(tensors) -> float:
    """Slow, obviously correct: sqrt of a float64 sum of squares, one tensor at a time."""
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors))


def one_step(run, tier="full", mutate_grads=None, quantities=None):
    """One hooked training step; returns (host metrics, grads, weights before and after)."""
    probe = Probe(run.head, run.optimizers, tier=tier, tensor_every=1, quantities=quantities)
    loss, outputs = run.forward_backward()
    if mutate_grads is not None:
        loss = mutate_grads(run, loss)
    named = dict(run.model.named_parameters())
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in named.items()}
    emb_grad = run.model.puzzle_emb.local_weights.grad.clone()
    before = {n: p.detach().clone() for n, p in named.items()}
    probe.before_step(1, loss=loss)
    run.optimizer_step()
    probe.after_step(1)
    host = metrics_to_host(probe.collect(1, outputs=outputs, carry=run.carry))
    after = {n: p.detach().clone() for n, p in named.items()}
    return host, grads, emb_grad, before, after


def test_group_names_match_the_models_module_groups(make_run) -> None:
    run = make_run()
    for wrapped in (run.model, run.head):  # names with and without the loss head's prefix
        expected = {g: sorted(n for n, _ in ps) for g, ps in module_groups(wrapped).items()}
        got: dict[str, list[str]] = {}
        for name, _ in wrapped.named_parameters():
            for group in parameter_group_names(name):
                got.setdefault(group, []).append(name)
        assert {g: sorted(ns) for g, ns in got.items()} == expected
    assert parameter_group_names("module._orig_mod.H_level.layers.1.mlp.w") == ["H", "H.1"]


def test_grad_norms_global_per_group_and_per_block_match_loops(make_run) -> None:
    run = make_run()
    host, grads, emb_grad, _, _ = one_step(run)
    groups = module_groups(run.model)
    assert set(groups) == {"embed", "H", "H.0", "H.1", "L", "L.0", "lm_head", "q_head"}
    assert host["grad/norm"] == pytest.approx(l2(g for g in grads.values()), rel=1e-5)
    for group, members in groups.items():
        expected = l2(grads[n] for n, _ in members)
        assert host[f"grad/norm/{group}"] == pytest.approx(expected, rel=1e-5), group
    assert host["grad/norm/puzzle_emb"] == pytest.approx(l2([emb_grad]), rel=1e-5)
    assert host["grad/norm"] > 0 and host["grad/norm/puzzle_emb"] > 0


def test_missing_gradients_count_as_zero_and_no_gradients_log_nothing(make_run) -> None:
    run = make_run()

    def drop_lm_head_grad(run, loss):
        run.model.inner.lm_head.weight.grad = None
        return loss

    host, grads, _, _, _ = one_step(run, mutate_grads=drop_lm_head_grad)
    assert grads["inner.lm_head.weight"] is None
    assert host["grad/norm/lm_head"] == 0.0
    assert host["grad/norm"] == pytest.approx(l2(g for g in grads.values() if g is not None))

    probe = Probe(run.head, run.optimizers, tier="full")
    run.zero_grad()
    probe.before_step(2)
    assert not any(k.startswith("grad/") for k in probe.collect(2))


def poison(run, loss):
    run.model.inner.H_level.layers[0].mlp.down_proj.weight.grad[0, :3] = float("nan")
    run.model.inner.q_head.bias.grad[1] = float("inf")
    run.model.puzzle_emb.local_weights.grad[2, 5] = float("-inf")
    return loss * float("nan")


def overflow(run, loss):
    run.model.inner.lm_head.weight.grad[0, 0] = 3e38  # finite, but its square overflows
    return loss


@pytest.mark.parametrize("always_count", [False, True])
def test_nonfinite_count_counts_every_nan_and_inf_in_grads_and_loss(make_run, always_count):
    quantities = [
        GradNorm(),
        GroupGradNorm(),
        NonfiniteCount(count_on_healthy_cpu_steps=always_count),
    ]
    host, grads, emb_grad, _, _ = one_step(make_run(), mutate_grads=poison, quantities=quantities)
    expected = sum(int((~np.isfinite(g.numpy())).sum()) for g in grads.values())
    expected += int((~np.isfinite(emb_grad.numpy())).sum()) + 1  # + the loss
    assert expected == 6 and host["nonfinite/count"] == expected
    assert math.isnan(host["grad/norm"]) and math.isinf(host["grad/norm/q_head"])
    assert host["grad/norm/lm_head"] > 0 and math.isfinite(host["grad/norm/lm_head"])

    for mutate in (None, overflow):  # healthy, and finite values whose norm overflows
        host, *_ = one_step(make_run(), mutate_grads=mutate, quantities=quantities)
        assert host["nonfinite/count"] == 0
    assert math.isinf(host["grad/norm"])


def test_weight_norms_and_update_ratios_match_loops(make_run) -> None:
    run = make_run()
    host, _, _, before, after = one_step(run)
    for group, members in module_groups(run.model).items():
        names = [n for n, _ in members]
        weight = l2(after[n] for n in names)
        update = l2(after[n] - before[n] for n in names)
        assert host[f"param/norm/{group}"] == pytest.approx(weight, rel=1e-5), group
        assert host[f"update/ratio/{group}"] == pytest.approx(update / weight, rel=1e-4), group
        assert 1e-5 < host[f"update/ratio/{group}"] < 1.0


def test_update_ratio_without_hooks_measures_between_consecutive_step_calls(make_run) -> None:
    run = make_run()
    probe = Probe(run.head, run.optimizers, tier="full")
    ratios = []
    for step in range(1, 4):
        loss, outputs = run.forward_backward()
        run.optimizer_step()
        if step == 2:
            snap = {n: p.detach().clone() for n, p in run.model.named_parameters()}
        host = probe.step(step, outputs, run.carry, loss=loss)
        run.zero_grad()
        ratios.append(host.get("update/ratio/H"))
    assert ratios[0] is None  # nothing to compare the first call with
    names = [n for n, _ in module_groups(run.model)["H"]]
    now = dict(run.model.named_parameters())
    expected = l2(now[n].detach() - snap[n] for n in names) / l2(now[n].detach() for n in names)
    assert ratios[2] == pytest.approx(expected, rel=1e-4)


def test_tiers_choose_the_families(make_run) -> None:
    run = make_run()
    cheap = set(Probe(run.head, run.optimizers, tier="cheap").names())
    standard = set(Probe(run.head, run.optimizers, tier="standard").names())
    full = set(Probe(run.head, run.optimizers, tier="full").names())
    assert "grad/norm" in cheap and "grad/norm/H" not in cheap and "act/q_halt/mean" in cheap
    assert {"grad/norm/H", "param/norm/L", "state/z_H/rms", "emb/puzzle/norm/mean"} <= standard
    assert not any(n.startswith("update/") or n.endswith(".0") for n in standard)
    assert {"grad/norm/H.1", "param/norm/L.0", "update/ratio/q_head"} <= full
    assert cheap < standard < full
    with pytest.raises(ValueError, match="tier"):
        Probe(run.head, tier="everything")


@pytest.mark.parametrize("every", [1, 2])
def test_update_ratio_stays_exact_over_consecutive_hooked_steps(make_run, every) -> None:
    """The snapshot for the next step is taken at the end of after_step (weights warm)."""
    run = make_run(seed=5)
    probe = Probe(run.head, run.optimizers, tier="full", every=every)
    names = [n for n, _ in module_groups(run.model)["L"]]
    for step in range(1, 5):
        loss, outputs = run.forward_backward()
        before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
        probe.before_step(step, loss=loss)
        run.optimizer_step()
        probe.after_step(step)
        host = metrics_to_host(probe.collect(step, outputs=outputs, carry=run.carry))
        run.zero_grad()
        if step % every:
            assert "update/ratio/L" not in host
            continue
        now = dict(run.model.named_parameters())
        update = l2(now[n].detach() - before[n] for n in names)
        expected = update / l2(now[n].detach() for n in names)
        assert host["update/ratio/L"] == pytest.approx(expected, rel=1e-4), step
