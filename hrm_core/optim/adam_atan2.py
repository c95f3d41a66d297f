"""Adam-atan2 in plain PyTorch (CPU, CUDA, MPS): Adam whose update is atan2(m_hat, sqrt(v_hat)).

Same step as the reference's CUDA `adam_atan2` kernel (HRM_NOTES "Main optimizer"):
    p <- p * (1 - lr*wd)
    m <- beta1*m + (1-beta1)*g ;  v <- beta2*v + (1-beta2)*g^2
    p <- p - lr * atan2(m / (1-beta1^t), sqrt(v) / sqrt(1-beta2^t))
atan2 is bounded and needs no epsilon. Unlike `adam-atan2-pytorch`, lr=0 is accepted (the
reference constructs it that way and lets the schedule set lr before every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hrm_core.optim.schedule import closure_loss


class AdamAtan2(Optimizer):
    """Adam-atan2 with decoupled weight decay; fp32 moments; no host-device sync in `step`."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.1,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"lr: must be >= 0 (got {lr})")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas: each must be in [0, 1) (got {betas})")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay: must be >= 0 (got {weight_decay})")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure_loss(closure)
        for group in self.param_groups:
            lr, weight_decay = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.float()
                state = self.state[param]
                if not state:
                    # `step` is a Python int: bias corrections stay host floats (no sync).
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(param, dtype=torch.float32)
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                m_hat = exp_avg / (1.0 - beta1**step)
                v_hat_sqrt = exp_avg_sq.sqrt() / math.sqrt(1.0 - beta2**step)
                update = torch.atan2(m_hat, v_hat_sqrt)

                if weight_decay != 0.0:
                    param.mul_(1.0 - lr * weight_decay)
                param.add_(update.to(param.dtype), alpha=-lr)
        return loss
