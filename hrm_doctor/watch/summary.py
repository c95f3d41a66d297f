"""`RUN/summary.json`: what the daemon knows of a run, small, for pages over many runs.

The daemon keeps it as it reads (a few KB, rewritten atomically at most every
`WRITE_EVERY_S` while the run changes): status, last step and speed, health and the newest live
finding, the headline metric, and two sparklines (train/lm_loss, grad/norm) of at most
`SPARK_POINTS` points each, built in bounded memory as the run streams past. The dashboard's
Runs page over a root of a thousand runs reads these files instead of every run's telemetry.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hrm_doctor._io import atomic_write_json
from hrm_doctor.rundir import SUMMARY_FILE, live_findings, run_health
from hrm_doctor.severity import severity_rank

SUMMARY_VERSION = 1
SPARK_POINTS = 60
WRITE_EVERY_S = 2.0
SPARKLINES = {"train/lm_loss": np.mean, "grad/norm": np.max}  # how two points fold into one


class Sparkline:
    """Fewer than 2 x `points` (step, value) pairs over a whole run: each point folds `stride`
    samples (the mean for a loss, the max for a gradient norm, so spikes stay visible); when
    the points fill up, neighbours fold in pairs and the stride doubles."""

    def __init__(self, fold, points: int = SPARK_POINTS) -> None:
        self.fold, self.points = fold, points
        self.steps = np.zeros(0, np.int64)
        self.values = np.zeros(0)
        self.stride = 1  # samples per point
        self._pend_s = np.zeros(0, np.int64)
        self._pend_v = np.zeros(0)

    def add(self, steps: np.ndarray, values: np.ndarray) -> None:
        s = np.concatenate([self._pend_s, steps.astype(np.int64)])
        v = np.concatenate([self._pend_v, values.astype(np.float64)])
        while len(v) >= self.stride:
            n = len(v) // self.stride * self.stride
            room = max(0, 2 * self.points - len(self.values)) * self.stride
            n = min(n, room) if room else n
            if n == 0:
                self._halve()
                continue
            block = v[:n].reshape(-1, self.stride)
            self.steps = np.concatenate([self.steps, s[:n].reshape(-1, self.stride)[:, -1]])
            self.values = np.concatenate([self.values, self.fold(block, axis=1)])
            s, v = s[n:], v[n:]
            if len(self.values) >= 2 * self.points:
                self._halve()
        self._pend_s, self._pend_v = s, v

    def _halve(self) -> None:
        n = len(self.values) // 2 * 2
        self.values = self.fold(self.values[:n].reshape(-1, 2), axis=1)
        self.steps = self.steps[1:n:2]
        self.stride *= 2

    def to_json(self) -> list[list[float]]:
        return [
            [int(s), float(f"{v:.6g}")]
            for s, v in zip(self.steps.tolist(), self.values.tolist(), strict=True)
        ]


class SummaryKeeper:
    """Folds each chunk the monitor reads into the run's summary, and writes it now and then."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.sparks = {name: Sparkline(fold) for name, fold in SPARKLINES.items()}
        self.best_eval: tuple[str, float] | None = None
        self.last_loss: float | None = None
        self._dirty = True
        self._written = 0.0

    def reset(self) -> None:
        """A rollback: the timeline is read anew."""
        self.__init__(self.run_dir)

    def add(self, df) -> None:
        self._dirty = True
        for name, spark in self.sparks.items():
            if name in df.columns:
                steps = df["step"].to_numpy()
                v = df[name].to_numpy(np.float64)
                if "rank" in df.columns and df["rank"].nunique() > 1:  # the mean over ranks
                    rows = df[["step", name]].dropna().groupby("step", sort=True)[name].mean()
                    steps, v = rows.index.to_numpy(), rows.to_numpy(np.float64)
                ok = np.isfinite(v)
                spark.add(steps[ok], v[ok])
        for col in df.columns:
            if col.startswith("eval/") and col.endswith("/exact_accuracy"):
                v = df[col].to_numpy(np.float64)
                v = v[np.isfinite(v)]
                if len(v) and (self.best_eval is None or v.max() > self.best_eval[1]):
                    self.best_eval = (col, float(v.max()))
        if "train/lm_loss" in df.columns:
            v = df["train/lm_loss"].to_numpy(np.float64)
            v = v[np.isfinite(v)]
            if len(v):
                self.last_loss = float(v[-1])

    def touch(self) -> None:
        """Something besides the data changed (a finding, a status)."""
        self._dirty = True

    def maybe_write(self, monitor: Any, now: float, force: bool = False) -> None:
        if not self._dirty or (not force and now - self._written < WRITE_EVERY_S):
            return
        live = live_findings(self.run_dir)
        newest = max(
            live,
            key=lambda f: (f.get("first_step", -1), severity_rank(f.get("severity"))),
            default=None,
        )
        headline = (
            self.best_eval
            if self.best_eval is not None
            else ("train/lm_loss", self.last_loss)
            if self.last_loss is not None
            else (None, None)
        )
        summary = {
            "summary_version": SUMMARY_VERSION,
            "updated": time.time(),
            "status": monitor.status,
            "health": run_health(self.run_dir),
            "last_step": monitor.last_step,
            "steps_per_s": monitor.steps_per_s,
            "last_write_time": monitor.last_data_time,
            "findings": len(live),
            "newest_finding": None
            if newest is None
            else {k: newest.get(k) for k in ("id", "rule", "severity", "first_step", "message")},
            "headline": headline[0],
            "headline_value": headline[1],
            "sparklines": {name: s.to_json() for name, s in self.sparks.items()},
        }
        try:
            atomic_write_json(self.run_dir / SUMMARY_FILE, summary, durable=False)
        except OSError:
            return  # a read-only run directory: the summary is a convenience, not the record
        self._dirty = False
        self._written = now
