"""All model gradients as views of one flat fp32 buffer: one all-reduce, one norm, one check.

Each parameter's `.grad` is a view into the buffer, so backward accumulates straight into it
(what DDP calls gradient_as_bucket_view). The data-parallel all-reduce (SUM, the loss being
pre-scaled by 1/global_batch_size as in the reference) is then one collective, and the global
norm, the clipping and the non-finite count are one kernel each, with no host sync.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


class FlatGradients:
    """The gradients of `params`, stored contiguously; `zero_()` replaces optimizer.zero_grad."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("no trainable parameters")
        device = self.params[0].device
        total = sum(p.numel() for p in self.params)
        self.flat = torch.zeros(total, dtype=torch.float32, device=device)  # (P,)
        offset = 0
        for p in self.params:
            if p.dtype != torch.float32:
                raise ValueError(f"parameter of dtype {p.dtype}: master weights must be fp32")
            p.grad = self.flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()

    def zero_(self) -> None:
        self.flat.zero_()

    def check_views(self) -> None:
        """Raise if something replaced a `.grad` (then backward no longer writes the buffer)."""
        for p in self.params:
            if p.grad is None or p.grad.data_ptr() < self.flat.data_ptr():
                raise RuntimeError("a parameter's .grad is no longer a view of the flat buffer")

    def all_reduce_(self, group: dist.ProcessGroup | None = None) -> None:
        """Sum the gradients over ranks (a collective; the host does not wait on the device)."""
        dist.all_reduce(self.flat, op=dist.ReduceOp.SUM, group=group)

    def norm(self) -> torch.Tensor:
        """0-d global L2 norm (fp32, on the device)."""
        return torch.linalg.vector_norm(self.flat)

    def nonfinite_count(self) -> torch.Tensor:
        """0-d count of NaN/inf entries (on the device)."""
        return torch.isfinite(self.flat).logical_not_().sum()

    def clip_(self, max_norm: float, norm: torch.Tensor) -> None:
        """Scale the gradients so that their norm is at most `max_norm` (as clip_grad_norm_)."""
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        self.flat.mul_(scale)
