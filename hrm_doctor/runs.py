"""Summarising one run for `info` and `runs`, and ranking the runs of a root (sweeps)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from hrm_doctor.rundir import run_health
from hrm_doctor.severity import severity_rank


@dataclass(frozen=True)
class RunSummary:
    """What a run is: the figures `hrm-doctor info` prints and `hrm-doctor runs` tabulates."""

    path: str
    run_id: str | None
    program: str | None
    status: str
    world_size: int | None
    ranks: list[int]
    steps: int
    first_step: int | None
    last_step: int | None
    metrics: int
    tensors: int
    start_time: float | None
    last_write_time: float | None
    steps_per_s: float | None
    size_bytes: int
    num_params: int | None
    sessions: int
    lineage: list[dict[str, Any]]
    corrupt_segments: list[tuple[str, int]]
    health: str | None = None  # worst severity in findings.jsonl; None when never watched
    headline: str | None = None  # the metric runs are ranked by (higher is better)
    headline_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise_run(path: str | os.PathLike[str]) -> RunSummary:
    """Read a run once, in chunks (memory does not grow with its length), and summarise it.
    Raises UserError (also a FileNotFoundError) for a missing or non-run directory."""
    from hrm_doctor.telemetry import RunReader

    reader = RunReader(path, keep_history=False)
    acc = _Accumulator()
    for df in reader.iter_scalars(with_time=True):
        acc.add(df)
    meta = reader.meta
    rate = acc.steps_per_s()
    lineage = reader.lineage
    headline, value = acc.headline()
    first, last = acc.first, acc.last
    return RunSummary(
        path=str(path),
        run_id=meta.get("run_id"),
        program=meta.get("program"),
        status=reader.status,
        world_size=meta.get("world_size"),
        ranks=reader.ranks,
        steps=acc.steps,
        first_step=first,
        last_step=last,
        metrics=len(acc.metrics),
        tensors=len(reader.declared_tensors),
        start_time=meta.get("start_time"),
        last_write_time=reader.last_write_time,
        steps_per_s=rate,
        size_bytes=reader.size_bytes,
        num_params=meta.get("num_params"),
        sessions=len({e["session"] for e in lineage}),
        lineage=lineage,
        corrupt_segments=reader.corrupt_segments,
        health=run_health(path),
        headline=headline,
        headline_value=value,
    )


_RATE_ROWS = 100  # steps/s over the newest rows of the lowest rank (robust to resumes)


class _Accumulator:
    """What `summarise_run` needs, folded chunk by chunk."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None
        self.steps = 0
        self.metrics: dict[str, None] = {}
        self.best_eval: dict[str, float] = {}
        self.last_loss: float | None = None
        self.tails: dict[int, Any] = {}  # rank -> its newest rows (step, time)

    def add(self, df) -> None:
        import numpy as np
        import pandas as pd

        if not len(df):
            return
        steps = df["step"].to_numpy()
        self.first = int(steps[0]) if self.first is None else self.first
        self.last = int(steps[-1])
        self.steps += int(np.count_nonzero(np.diff(steps))) + 1  # whole steps per chunk
        for c in df.columns:
            if c not in ("step", "rank", "time"):
                self.metrics.setdefault(c, None)
                if c.startswith("eval/") and c.endswith("/exact_accuracy"):
                    v = df[c].to_numpy(np.float64)
                    v = v[~np.isnan(v)]
                    if len(v):
                        self.best_eval[c] = max(float(v.max()), self.best_eval.get(c, -np.inf))
        if "train/lm_loss" in df.columns:
            v = df["train/lm_loss"].dropna()
            if len(v):
                self.last_loss = float(v.iloc[-1])
        for rank, g in df.groupby("rank", sort=True):
            old = self.tails.get(int(rank))
            part = g[["step", "time"]]
            both = part if old is None else pd.concat([old, part])
            self.tails[int(rank)] = both.tail(_RATE_ROWS)

    def steps_per_s(self) -> float | None:
        if not self.tails:
            return None
        tail = self.tails[min(self.tails)]
        if len(tail) < 2:
            return None
        dt = float(tail["time"].iloc[-1] - tail["time"].iloc[0])
        ds = int(tail["step"].iloc[-1] - tail["step"].iloc[0])
        return ds / dt if dt > 0 else None

    def headline(self) -> tuple[str | None, float | None]:
        """Best eval exact accuracy (any set), else the last train/lm_loss."""
        for col in sorted(self.best_eval):
            return col, self.best_eval[col]
        if self.last_loss is not None:
            return "train/lm_loss", self.last_loss
        return None, None


def rank_runs(summaries: list[RunSummary]) -> list[RunSummary]:
    """Healthiest first (never-watched runs after the watched ones), then the best headline."""

    def key(s: RunSummary):
        # never watched: after healthy and info runs, before those with a warning or worse
        health = severity_rank(s.health) if s.health is not None else 1.5
        v = s.headline_value
        score = 0.0 if v is None else (-v if s.headline and "accuracy" in s.headline else v)
        return (health, v is None, score, s.path)

    return sorted(summaries, key=key)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_age(t: float | None, now: float | None = None) -> str:
    if t is None:
        return "-"
    age = (now if now is not None else time.time()) - t
    if age < 60:
        return f"{age:.0f}s ago"
    if age < 3600:
        return f"{age / 60:.0f}m ago"
    if age < 86400:
        return f"{age / 3600:.1f}h ago"
    return f"{age / 86400:.1f}d ago"
