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
    """Read a run once and summarise it. Raises UserError for a missing or non-run directory."""
    from hrm_doctor.telemetry import RunReader

    reader = RunReader(path)
    df = reader.scalars(with_time=True)
    meta = reader.meta
    steps = df["step"]
    first = int(steps.min()) if len(df) else None
    last = int(steps.max()) if len(df) else None
    rate = None
    if len(df) > 1:
        # steps/s over the newest rank-0 rows (or any rank), robust to resumes: last 100 rows
        tail = df[df["rank"] == df["rank"].min()].tail(100)
        dt = float(tail["time"].iloc[-1] - tail["time"].iloc[0])
        ds = int(tail["step"].iloc[-1] - tail["step"].iloc[0])
        rate = ds / dt if dt > 0 else None
    lineage = reader.lineage
    headline, value = _headline(df)
    return RunSummary(
        path=str(path),
        run_id=meta.get("run_id"),
        program=meta.get("program"),
        status=reader.status,
        world_size=meta.get("world_size"),
        ranks=reader.ranks,
        steps=int(steps.nunique()) if len(df) else 0,
        first_step=first,
        last_step=last,
        metrics=len(df.columns) - 3,
        tensors=len(reader.tensor_names),
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


def _headline(df) -> tuple[str | None, float | None]:
    """Best eval exact accuracy (any set), else the negated last train/lm_loss."""
    evals = [c for c in df.columns if c.startswith("eval/") and c.endswith("/exact_accuracy")]
    for col in sorted(evals):
        values = df[col].dropna()
        if len(values):
            return col, float(values.max())
    if "train/lm_loss" in df.columns:
        values = df["train/lm_loss"].dropna()
        if len(values):
            return "train/lm_loss", float(values.iloc[-1])
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
