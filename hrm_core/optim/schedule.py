"""Learning-rate schedule for both optimizers: linear warmup, then cosine to lr*min_ratio
(HRM_NOTES "Schedule"; with min_ratio 1.0, the default, constant after warmup); and what both
optimizers share of PyTorch's contract (the rate set by the trainer, the optional closure).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import Optimizer


def lr_at(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 1.0
) -> float:
    """Learning rate at optimizer step `step` (the reference counts the first step as 1).

    step < warmup: base_lr * step / warmup. After: base_lr * (min_ratio + (1 - min_ratio) *
    0.5 * (1 + cos(pi * progress))), progress from 0 at the end of warmup to 1 at total_steps,
    held at 1 beyond (the reference's cosine would rise again there).
    """
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_ratio + (1.0 - min_ratio) * cosine)


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (called by the trainer before each step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def closure_loss(closure: Callable[[], float] | None) -> float | None:
    """`Optimizer.step(closure)`: the loss re-evaluated with gradients enabled, when given."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
