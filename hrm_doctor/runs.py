"""Finding run directories under a root, and summarising one run for `info` and `runs`."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hrm_doctor.engine.finding import SEVERITY_ORDER
from hrm_doctor.telemetry import schema

# Directories never descended into while looking for runs.
_SKIP_DIRS = frozenset(
    {schema.TELEMETRY_DIR, "checkpoints", ".git", "__pycache__", ".venv", "wandb"}
)


def is_run_dir(path: Path) -> bool:
    return (path / schema.TELEMETRY_DIR).is_dir() or (path / schema.META_FILE).is_file()


def find_runs(root: str | os.PathLike[str], max_depth: int = 6) -> list[Path]:
    """Every run directory at or below `root` (a run inside a run is not looked for)."""
    root = Path(root)
    found: list[Path] = []

    def walk(p: Path, depth: int) -> None:
        if is_run_dir(p):
            found.append(p)
            return
        if depth >= max_depth:
            return
        try:
            entries = sorted(os.scandir(p), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if (
                e.is_dir(follow_symlinks=False)
                and e.name not in _SKIP_DIRS
                and not e.name.startswith(".")
            ):
                walk(Path(e.path), depth + 1)

    walk(root, 0)
    return found


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
        health=_health(Path(path)),
        headline=headline,
        headline_value=value,
    )


def _health(run: Path) -> str | None:
    from hrm_doctor.watch.findings_log import FINDINGS_FILE, read_findings

    if not (run / FINDINGS_FILE).exists():
        return None
    from hrm_doctor.supervisor import read_lineage

    superseded = {i for e in read_lineage(run) for i in e.get("superseded_findings", [])}
    worst = "healthy"
    for f in read_findings(run):
        if f.get("id") in superseded:
            continue
        if SEVERITY_ORDER.get(f.get("severity"), 0) > SEVERITY_ORDER.get(worst, 0):
            worst = f["severity"]
    return worst


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
        health = SEVERITY_ORDER.get(s.health, 0) if s.health is not None else 1.5  # healthy: 0
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
