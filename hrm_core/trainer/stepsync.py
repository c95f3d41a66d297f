"""`StepSync`: the one host-device sync of a training step, and what crosses ranks with it.

Each step the recipe needs three things on the host: whether the loss and gradients are finite
(a non-finite step is skipped), the global gradient norm (clipping, the log), and the loss
head's sums (the train/* means). The probe's quantities of the *previous* step are ready on the
device by then (they exist only after optimizer.step()), so the sync brings both at once and
the previous step is logged whole (trainer/steplog.py explains the one-step lag). Under
torchrun the sums and the probe's scalars are all-reduced in one collective before that sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from hrm_core.probe import metrics_to_host
from hrm_core.trainer.distributed import CommTimer, DistInfo
from hrm_core.trainer.steplog import SUMS, StepLog


@dataclass(frozen=True)
class StepFacts:
    """What the host knows of a step after its sync."""

    local: dict[str, float]  # this rank's sums (SUMS order, by name)
    reduced: dict[str, float]  # the sums over every rank (= local on one rank)
    grad_norm: float  # the global gradient norm before clipping

    @property
    def nonfinite(self) -> bool:
        """Any rank saw a non-finite loss or gradient, or the norm itself overflowed."""
        return self.reduced["nonfinite"] > 0 or not _finite(self.grad_norm)


class StepSync:
    """Holds the probe's device metrics of the held step; `sync` is THE host sync of a step."""

    def __init__(self, info: DistInfo, log: StepLog, device: torch.device) -> None:
        self.info, self.log, self.device = info, log, device
        self.comm = CommTimer(device)
        self.probe_pending: dict[str, Any] = {}  # the probe's metrics of the held step
        self.probe_keys_agree = True  # every rank's probe returned the same scalars

    def hold_probe(self, metrics: dict[str, Any]) -> None:
        """The probe's metrics of the step just taken, logged with it at the next sync."""
        self.probe_pending = metrics

    def probe_scalars(self) -> int:
        return sum(1 for v in self.probe_pending.values() if _scalar(v))

    def _probe_vector(self) -> tuple[list[str], torch.Tensor]:
        names = sorted(k for k, v in self.probe_pending.items() if _scalar(v))
        if not names:
            return [], torch.zeros(0, dtype=torch.float64, device=self.device)
        return names, torch.stack([self.probe_pending[k].to(torch.float64) for k in names])

    def sync(self, sums: torch.Tensor, grad_norm: torch.Tensor) -> StepFacts:
        """This step's sums (SUMS order) and gradient norm to the host, with the held step's
        probe metrics (that step is logged now)."""
        names, vector = self._probe_vector()
        # 0-d entries come back as full-precision floats (1-D ones as float32 arrays).
        device_metrics: dict[str, Any] = {
            **{f"_local/{k}": sums[j] for j, k in enumerate(SUMS)},
            "_trainer/grad_norm": grad_norm,
            **self.probe_pending,
        }
        if self.info.distributed:
            reduced = torch.cat([sums, vector]) if self.probe_keys_agree else sums.clone()
            with self.comm:
                torch.distributed.all_reduce(reduced)
            device_metrics.update({f"_global/{j}": v for j, v in enumerate(reduced)})
        host = metrics_to_host(device_metrics)  # HOST SYNC: the one of the step
        local = {k: float(host.pop(f"_local/{k}")) for k in SUMS}
        reduced_all = [
            float(host.pop(f"_global/{j}"))
            for j in range(len(SUMS) + len(names))
            if f"_global/{j}" in host
        ]
        grad_norm_host = float(host.pop("_trainer/grad_norm"))
        probe_sum = reduced_all[len(SUMS) :] if len(reduced_all) > len(SUMS) else None
        self.log.complete(host, _mean_over_ranks(host, names, probe_sum, self.info.world_size))
        self.probe_pending = {}
        global_sums = dict(zip(SUMS, reduced_all, strict=False)) if reduced_all else local
        return StepFacts(local, global_sums, grad_norm_host)

    def flush(self, collective: bool = True) -> None:
        """Log the held step now (end of a pass, a checkpoint, the end): its probe metrics to
        the host, reduced over ranks unless `collective` is off (after a failure)."""
        if self.log.pending is None:
            return
        device_metrics = dict(self.probe_pending)
        names, vector = self._probe_vector()
        if collective and self.info.distributed and self.probe_keys_agree and names:
            summed = vector.clone()
            torch.distributed.all_reduce(summed)
            device_metrics["_trainer/probe_sum"] = summed
        host = metrics_to_host(device_metrics)  # HOST SYNC (end of a pass, checkpoint, the end)
        probe_sum = host.pop("_trainer/probe_sum", None)
        self.log.complete(host, _mean_over_ranks(host, names, probe_sum, self.info.world_size))
        self.probe_pending = {}


def _scalar(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 0


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _mean_over_ranks(
    host: dict[str, Any], names: list[str], sums: Any, world_size: int
) -> dict[str, Any]:
    """The probe's scalars averaged over ranks (for the console and W&B), when they were
    reduced; otherwise this rank's values."""
    if sums is None or not len(names):
        return dict(host)
    reduced = dict(host)
    reduced.update({name: s / world_size for name, s in zip(names, sums, strict=True)})
    return reduced
