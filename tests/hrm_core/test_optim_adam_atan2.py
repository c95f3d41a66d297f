"""Adam-atan2 against its formula, with lr=0, weight decay, groups and a state_dict round trip."""

from __future__ import annotations

import math

import pytest
import torch

from hrm_core.optim import AdamAtan2


def _formula_steps(p0, grads, lr, betas, wd):
    """The update written out element by element in float64 (the reference CUDA kernel's math)."""
    beta1, beta2 = betas
    p, m, v = p0.double().clone(), torch.zeros_like(p0, dtype=torch.float64), None
    v = torch.zeros_like(m)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        p = p * (1 - lr * wd)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat_sqrt = v.sqrt() / math.sqrt(1 - beta2**t)
        p = p - lr * torch.atan2(m_hat, v_hat_sqrt)
    return p


def test_matches_the_formula_over_several_steps() -> None:
    torch.manual_seed(0)
    p0 = torch.randn(7, 5)
    grads = [torch.randn(7, 5) * 10 ** (-i) for i in range(6)]
    grads[2][0, 0] = 0.0  # a zero gradient: atan2(0, ...) = 0, no division by zero
    param = torch.nn.Parameter(p0.clone())
    opt = AdamAtan2([param], lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for g in grads:
        param.grad = g.clone()
        opt.step()
    expected = _formula_steps(p0, grads, 3e-3, (0.9, 0.95), 0.1)
    assert torch.allclose(param.double(), expected, atol=1e-6)


def test_lr_zero_is_accepted_and_leaves_parameters_unchanged() -> None:
    param = torch.nn.Parameter(torch.randn(4))
    before = param.detach().clone()
    opt = AdamAtan2([param], lr=0.0, weight_decay=0.1)
    param.grad = torch.randn(4)
    opt.step()
    assert torch.equal(param.detach(), before)
    assert opt.state[param]["step"] == 1  # moments still advance, like the reference
    with pytest.raises(ValueError, match="lr"):
        AdamAtan2([param], lr=-1.0)


def test_update_is_bounded_by_lr_times_half_pi() -> None:
    param = torch.nn.Parameter(torch.zeros(1000))
    opt = AdamAtan2([param], lr=0.01, weight_decay=0.0)
    param.grad = torch.randn(1000) * 1e6
    opt.step()
    assert param.detach().abs().max() <= 0.01 * math.pi / 2 + 1e-7


def test_parameter_groups_and_state_dict_resume_exactly() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2, 2))
    grads = [(torch.randn(3), torch.randn(2, 2)) for _ in range(4)]

    def make(pa, pb):
        return AdamAtan2([{"params": [pa]}, {"params": [pb], "lr": 0.05}], lr=0.01)

    straight_a, straight_b = (torch.nn.Parameter(t.detach().clone()) for t in (a, b))
    opt = make(straight_a, straight_b)
    for ga, gb in grads:
        straight_a.grad, straight_b.grad = ga.clone(), gb.clone()
        opt.step()

    opt = make(a, b)
    for ga, gb in grads[:2]:
        a.grad, b.grad = ga.clone(), gb.clone()
        opt.step()
    saved = opt.state_dict()
    resumed_a, resumed_b = (torch.nn.Parameter(t.detach().clone()) for t in (a, b))
    opt = make(resumed_a, resumed_b)
    opt.load_state_dict(saved)
    for ga, gb in grads[2:]:
        resumed_a.grad, resumed_b.grad = ga.clone(), gb.clone()
        opt.step()
    assert torch.equal(resumed_a, straight_a) and torch.equal(resumed_b, straight_b)


def test_agrees_with_the_adam_atan2_pytorch_package_at_a_1_b_1() -> None:
    package = pytest.importorskip("adam_atan2_pytorch")
    torch.manual_seed(0)
    ours, theirs = torch.nn.Parameter(torch.randn(50)), torch.nn.Parameter(torch.randn(50))
    with torch.no_grad():
        theirs.copy_(ours)
    opt_ours = AdamAtan2([ours], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    opt_theirs = package.AdamAtan2(
        [theirs], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, a=1.0, b=1.0
    )
    for _ in range(5):
        g = torch.randn(50)
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    assert torch.allclose(ours, theirs, atol=1e-6)
