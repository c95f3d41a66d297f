"""What rank 0 shows on the console: a rich progress bar on a terminal, plain lines otherwise.

Plain lines (a pipe, a log file, CI) come at the first step, then at most every
PLAIN_INTERVAL_S seconds, plus every note (evaluations, checkpoints, patches).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

PLAIN_INTERVAL_S = 5.0

SHOWN = (
    ("train/lm_loss", "lm_loss", "{:.4f}"),
    ("train/accuracy", "acc", "{:.3f}"),
    ("train/exact_accuracy", "exact", "{:.3f}"),
    ("train/steps", "act", "{:.2f}"),
    ("train/lr", "lr", "{:.2e}"),
    ("grad/norm", "gnorm", "{:.3g}"),
    ("sys/samples_per_s", "samples/s", "{:.0f}"),
)


def format_metrics(metrics: Mapping[str, float]) -> str:
    parts = []
    for key, label, fmt in SHOWN:
        value = metrics.get(key)
        if isinstance(value, float | int):
            parts.append(f"{label} {fmt.format(value)}")
    if metrics.get("nonfinite/count"):
        parts.append(f"NONFINITE {metrics['nonfinite/count']:.0f} (step skipped)")
    return "  ".join(parts)


class Console:
    """Progress of the run on rank 0; silent on other ranks."""

    def __init__(
        self, active: bool, total_steps: int, stream: TextIO | None = None, rich: bool | None = None
    ) -> None:
        self.active = active
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        use_rich = self.stream.isatty() if rich is None else rich
        self._progress = None
        self._task = None
        self._last_plain = -float("inf")
        if active and use_rich:
            from rich.console import Console as RichConsole
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=RichConsole(file=self.stream),
                transient=False,
            )
            self._task = self._progress.add_task("train", total=total_steps, metrics="")
            self._progress.start()

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.active:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=step, metrics=format_metrics(metrics))
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_INTERVAL_S or step in (1, self.total_steps):
            self._last_plain = now
            print(f"step {step}/{self.total_steps}  {format_metrics(metrics)}", file=self.stream)
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.active:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, file=self.stream)
            self.stream.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
