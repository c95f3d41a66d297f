"""Per-step records: turn the loss head's sums into the logged means, and log them one step late.

Why one step late: the trainer must know before `optimizer.step()` whether the loss and the
gradients are finite (a non-finite step is skipped), which needs the host to see them; the
probe's post-step quantities exist only after `optimizer.step()`. Rather than sync twice, the
one host sync of step N brings step N's trainer metrics *and* step N-1's probe metrics, and
step N-1 is then logged whole (trainer + probe + its wall time). `flush` closes the gap before
a checkpoint or the end, so telemetry never misses a step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hrm_core.trainer.console import Console
from hrm_core.trainer.wandb_logger import WandbLogger
from hrm_doctor import RunWriter

SUMS = (
    "count",
    "accuracy",
    "exact_accuracy",
    "q_halt_accuracy",
    "steps",
    "lm_loss",
    "q_halt_loss",
    "q_continue_loss",
    "nonfinite",
)
"""Order of the per-step sum vector: the loss head's metrics, then the non-finite count."""

PER_SEQUENCE = ("lm_loss", "q_halt_loss", "q_continue_loss")
"""Divided by the batch (every slot trains); the others by `count` (sequences that halted)."""


def train_means(
    sums: Mapping[str, float], batch_size: int, q_continue: bool = True
) -> dict[str, float]:
    """Sums -> the logged train/* values.

    Losses: per-sequence means over the batch (`batch_size` is this rank's local batch for the
    per-rank telemetry, the global batch for the reduced console/W&B values). Accuracies and
    steps: means over the sequences that halted this step, omitted when none halted (the
    reference logged 0, which reads like a collapse). train/count: how many halted.
    `q_continue` False (TRM's simplified halting): no train/q_continue_loss, which would be 0.
    """
    out = {f"train/{k}": sums[k] / batch_size for k in PER_SEQUENCE}
    if not q_continue:
        del out["train/q_continue_loss"]
    count = sums["count"]
    if count > 0:
        for k in ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps"):
            out[f"train/{k}"] = sums[k] / count
    out["train/count"] = count
    out["nonfinite/count"] = sums["nonfinite"]
    return out


@dataclass
class Pending:
    step: int
    local: dict[str, Any]
    reduced: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class StepLog:
    """Holds the newest step until its probe metrics and wall time are known, then logs it to
    the run directory (this rank's values), W&B and the console (reduced over ranks)."""

    def __init__(self, writer: RunWriter, wandb: WandbLogger, console: Console) -> None:
        self.writer = writer
        self.wandb = wandb
        self.console = console
        self.pending: Pending | None = None

    def hold(self, step: int, local: dict[str, Any], reduced: dict[str, Any]) -> None:
        self.pending = Pending(step, local, reduced)

    def add(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """More host values for the held step (its timings, evaluation results); with no step
        held, they are logged at `step` at once."""
        if self.pending is not None:
            self.pending.extra.update(metrics)
        elif step is not None:
            self.writer.log(dict(metrics), step=step)
            self.wandb.log(metrics, step=step)

    def complete(
        self,
        probe_local: Mapping[str, Any],
        probe_reduced: Mapping[str, Any],
    ) -> None:
        """Log the held step with its probe metrics."""
        p = self.pending
        if p is None:
            return
        self.pending = None
        # one producer per name: the probe leaves the trainer's own metrics to it
        both = set(probe_local) & (set(p.local) | set(p.extra))
        if both:
            raise RuntimeError(f"logged by both the trainer and the probe: {sorted(both)}")
        local = {**probe_local, **p.local, **p.extra}
        reduced = {**probe_reduced, **p.reduced, **p.extra}
        self.writer.log(local, step=p.step)
        self.wandb.log(reduced, step=p.step)
        self.console.update(p.step, reduced)
