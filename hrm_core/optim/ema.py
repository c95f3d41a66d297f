"""An exponential moving average of the weights (TRM's `ema=true`; TinyRecursiveModels
models/ema.py): updated after every optimizer step, evaluated in place of the live weights,
saved in checkpoints so that a resume continues it exactly.

The live-to-average distance `ema/param_dist` (||ema - w|| / ||w||) costs three passes over the
weights instead of one; it is computed only while `track_distance` is on (the probe turns it on)
and read from `last_distance`, like the SignSGD optimizer's `last_stats`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """ema <- rate * ema + (1 - rate) * w for every trainable parameter of `model`."""

    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        if not 0.0 < rate < 1.0:
            raise ValueError(f"ema_rate: must be in (0, 1) (got {rate!r})")
        self.rate = float(rate)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.track_distance = False
        self.last_distance: torch.Tensor | None = None
        """0-d device tensor: ||ema - w|| / ||w|| after the last update (with track_distance)."""

    @torch.no_grad()
    def update(self) -> None:
        """After the optimizer step. No host sync."""
        live = self.params  # under no_grad: the parameters themselves, no per-step views
        if not self.track_distance:
            torch._foreach_lerp_(self.shadow, live, 1.0 - self.rate)
            return
        diff = torch._foreach_sub(live, self.shadow)  # w - ema
        torch._foreach_add_(self.shadow, diff, alpha=1.0 - self.rate)
        # The new ema - w is -rate * (w - old ema): its norm comes from `diff` without a pass.
        dist = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diff))) * self.rate
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(live)))
        self.last_distance = dist / norm

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside: the model's parameters hold the average (evaluation); restored after."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            torch._foreach_copy_([p.detach() for p in self.params], self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.detach() for p in self.params], live)

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average afresh from the weights as they are now."""
        torch._foreach_copy_(self.shadow, [p.detach() for p in self.params])

    def state_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "shadow": dict(zip(self.names, self.shadow, strict=True))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow = state["shadow"]
        missing = [n for n in self.names if n not in shadow]
        if missing:
            raise KeyError(f"EMA state lacks {missing[0]}")
        with torch.no_grad():
            for name, tensor in zip(self.names, self.shadow, strict=True):
                tensor.copy_(shadow[name])
