"""The warmup + cosine schedule with lr_min_ratio, and setting it on an optimizer."""

from __future__ import annotations

import math

import torch

from hrm_core.optim import AdamAtan2, lr_at, set_lr


def test_linear_warmup_from_zero() -> None:
    assert lr_at(0, 1e-4, 100, 1000) == 0.0
    assert math.isclose(lr_at(25, 1e-4, 100, 1000), 2.5e-5)
    assert math.isclose(lr_at(100, 1e-4, 100, 1000), 1e-4)


def test_default_min_ratio_one_is_constant_after_warmup() -> None:
    assert all(math.isclose(lr_at(s, 7e-5, 10, 500), 7e-5) for s in range(10, 600, 37))


def test_cosine_to_min_ratio() -> None:
    base, warmup, total = 3e-4, 100, 1100
    assert math.isclose(lr_at(100, base, warmup, total, 0.1), base)
    assert math.isclose(lr_at(600, base, warmup, total, 0.1), base * (0.1 + 0.9 * 0.5))
    assert math.isclose(lr_at(1100, base, warmup, total, 0.1), base * 0.1)
    assert math.isclose(lr_at(5000, base, warmup, total, 0.1), base * 0.1)  # held at the floor
    values = [lr_at(s, base, warmup, total, 0.0) for s in range(warmup, total + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_no_warmup_starts_at_base() -> None:
    assert lr_at(0, 1e-3, 0, 10, 0.5) == 1e-3


def test_set_lr_sets_every_group() -> None:
    opt = AdamAtan2(
        [
            {"params": [torch.nn.Parameter(torch.ones(1))]},
            {"params": [torch.nn.Parameter(torch.ones(1))]},
        ],
        lr=0.0,
    )
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]
