"""System quantities the probe can measure (the trainer times its own steps, data and comms)."""

from __future__ import annotations

import sys

import torch

from hrm_core.probe.context import StepContext
from hrm_core.probe.quantity import Metrics, Quantity, Tier
from hrm_core.probe.target import ProbeTarget

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


def peak_memory_bytes(device: torch.device) -> int | None:
    """CUDA: the caching allocator's max_memory_allocated (a host-side counter, no sync);
    elsewhere: the process's peak resident set size (getrusage), or None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


class MemPeak(Quantity):
    """sys/mem_peak_bytes: peak memory so far (CUDA allocated bytes, or process peak RSS on CPU).

    What it reveals: leaks (a steady rise at a fixed batch size: tensors kept for logging, a
    carry that is not detached and keeps a graph alive across ACT segments) and OOM risk.
    Why it matters for HRM: the carry (batch x sequence x hidden, twice) and the extra forward
    for the Q target make memory scale with the batch.
    Remedy: find what accumulates; gradient accumulation at the same global batch; bf16 forward.
    Cost: a host-side counter read; the value is a Python int (no device tensor).
    The peak is never reset, so the probe does not disturb other users of the counter.
    """

    name = "sys/mem_peak_bytes"
    tier = Tier.CHEAP
    hooks = frozenset({"collect"})
    requires = "a CUDA device, or getrusage (not on Windows)"

    def setup(self, target: ProbeTarget) -> bool:
        return peak_memory_bytes(_device_of(target)) is not None

    def collect(self, ctx: StepContext) -> Metrics | None:
        peak = peak_memory_bytes(_device_of(ctx.target))
        return None if peak is None else {self.name: peak}


def _device_of(target: ProbeTarget) -> torch.device:
    return target.params[0].device if target.params else torch.device("cpu")
