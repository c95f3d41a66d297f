"""The base of every probe quantity (Cockpit-style): a schedule, hooks that return device tensors.

A quantity is one small class per measured thing. Its `names` are its telemetry keys (the
DESIGN.md metric catalogue: a contract the rule packs rely on). Its hooks return
`{name: 0-d or 1-D device tensor}` and never synchronise with the device; the one host sync per
logged step is `metrics_to_host`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from hrm_core.probe.context import StepContext
    from hrm_core.probe.target import ProbeTarget

Metrics = dict[str, Any]
"""name -> 0-d or 1-D device tensor, a `Ragged`, or a plain Python number (host-side values)."""


class Tier(IntEnum):
    """Cost tiers, the user-facing switch: each tier includes the ones below it."""

    CHEAP = 0
    """Loss-adjacent scalars and ACT: global grad norm, non-finite count, Q values, halting."""
    STANDARD = 1
    """+ per-group gradient and weight norms, carry-state magnitudes, puzzle-embedding stats."""
    FULL = 2
    """+ per-block (H.0, L.3, ...) norms and update/weight ratios (one weight snapshot)."""

    @classmethod
    def parse(cls, value: str | int | Tier) -> Tier:
        if isinstance(value, Tier):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in iter(cls):
            return cls(value)
        names = ", ".join(t.name.lower() for t in cls)
        raise ValueError(f"tier: must be one of {names} (got {value!r})")


HOOKS = ("before_step", "after_step", "collect")


@dataclass(frozen=True)
class Ragged:
    """A 1-D metric whose length depends on the data, kept at a fixed shape on the device.

    The logged array is `values[keep]`; selecting it on the device would be a host sync
    (its length must be known), so `metrics_to_host` selects on the host after its one copy.
    `detach()`/`numpy()` let a `RunWriter` log it directly too (with its own sync).
    """

    values: torch.Tensor
    """(N,) values, at a fixed shape."""
    keep: torch.Tensor
    """(N,) bool: which values belong to the metric."""

    def select(self) -> torch.Tensor:
        """values[keep] as a device tensor (a host sync on CUDA: the length is data-dependent)."""
        return self.values[self.keep]

    def detach(self) -> torch.Tensor:
        return self.select().detach()

    def numpy(self) -> Any:
        return self.select().detach().float().cpu().numpy()  # host sync (a CUDA copy)


class Quantity:
    """One measured quantity: what it reveals, when it is computed, how (subclasses document it).

    Subclasses set `tier`, `hooks` (which of before_step / after_step / collect produce values),
    `per_sample` (1-D arrays scheduled by `tensor_every` instead of `every`) and `name` (the
    log key, or the key prefix of a family such as grad/norm/GROUP), and override the hooks.
    `setup` sees the discovered model once and returns False when the quantity cannot be
    computed on it (the probe then skips it: a foreign model without a puzzle embedding, ...).
    """

    name: ClassVar[str]
    tier: ClassVar[Tier]
    hooks: ClassVar[frozenset[str]]
    per_sample: ClassVar[bool] = False
    requires: ClassVar[str] = ""
    """What `setup` looks for on the model, said when the quantity is skipped."""

    def __init__(self, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"{type(self).__name__}: every must be a positive integer")
        self.every = every

    def should_compute(self, step: int) -> bool:
        """The schedule: due on steps that are multiples of `every`."""
        return step % self.every == 0

    def setup(self, target: ProbeTarget) -> bool:
        """Prepare for `target` (precompute index tensors); False: not computable, skip it."""
        return True

    def names(self) -> list[str]:
        """The telemetry keys this quantity emits (after `setup`)."""
        return [self.name]

    def before_step(self, ctx: StepContext) -> Metrics | None:
        """After backward (+ gradient all-reduce), before clipping and optimizer.step()."""
        return None

    def after_step(self, ctx: StepContext) -> Metrics | None:
        """After optimizer.step()."""
        return None

    def collect(self, ctx: StepContext) -> Metrics | None:
        """From the step's outputs and carry (called when due)."""
        return None

    def observe(self, ctx: StepContext) -> None:
        """Called by every collect, due or not: per-slot state that must follow each segment."""

    def standalone(self, ctx: StepContext, due: bool) -> Metrics | None:
        """`Probe.step` without the hooks, every call: when due, before_step then after_step on
        what exists now. Quantities whose value needs two moments (the update ratio) override
        this and measure between consecutive calls instead."""
        if not due:
            return None
        merged: Metrics = {}
        for part in (self.before_step(ctx), self.after_step(ctx)):
            if part:
                merged.update(part)
        return merged or None
