"""The run directory: every name in it and every reader of its ledgers, in one place.

    RUN/meta.json, config.json     who wrote the run, and its resolved config (telemetry.writer)
    RUN/telemetry/                 the framed segments of every rank (telemetry.schema)
    RUN/findings.jsonl             the doctor's findings, each written once (watch.findings_log)
    RUN/patches.jsonl              the patch ledger: proposed, requested, applied... (watch.patches)
    RUN/lineage.jsonl              rollbacks and restarts of the run (watch.supervisor)
    RUN/summary.json               the daemon's small summary of the run (watch.summary)
    RUN/control/requests, acks     the live-patch channel to the trainer (control; docs/control.md)
    RUN/checkpoints/step_NNNNNNNN  full checkpoints (hrm_core.trainer.checkpoint)
    RUN/.hrm-doctor.lock           one daemon per run (watch.lock)

Every other module, in hrm_doctor, dashboards and hrm_core, imports these names instead of
spelling them. This module imports only the standard library and `severity`: anything may use it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hrm_doctor.severity import worst

META_FILE = "meta.json"
CONFIG_FILE = "config.json"
TELEMETRY_DIR = "telemetry"
FINDINGS_FILE = "findings.jsonl"
PATCHES_FILE = "patches.jsonl"
LINEAGE_FILE = "lineage.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".hrm-doctor.lock"
CONTROL_DIR = "control"
REQUESTS_DIR = "requests"  # under CONTROL_DIR
ACKS_DIR = "acks"  # under CONTROL_DIR
CHECKPOINTS_DIR = "checkpoints"
SUPERSEDED_DIR = "superseded"  # under CHECKPOINTS_DIR: a rolled-back branch, kept, never resumed
PARTIAL_PREFIX = ".partial-"  # a checkpoint being written (renamed into place when complete)
CHECKPOINT_NAME_RE = re.compile(r"^step_(\d{8,})$")
EVALUATIONS_DIR = "evaluations"  # evaluations/step_NNNNNNNN/: an evaluation's outputs (ARC JSON)

# Directories never descended into while looking for runs under a root.
SKIP_DIRS = frozenset(
    {TELEMETRY_DIR, CHECKPOINTS_DIR, CONTROL_DIR, ".git", "__pycache__", ".venv", "wandb"}
)

PathLike = str | os.PathLike[str]


# ---- runs ---------------------------------------------------------------------------------------


def is_run_dir(path: PathLike) -> bool:
    """A run directory has telemetry or a meta.json (a run that has not logged a step yet)."""
    path = Path(path)
    return (path / TELEMETRY_DIR).is_dir() or (path / META_FILE).is_file()


def find_runs(root: PathLike, max_depth: int = 6) -> list[Path]:
    """Every run directory at or below `root`, in name order (a run inside a run is not looked for)."""
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
            if e.name in SKIP_DIRS or e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                walk(Path(e.path), depth + 1)

    walk(Path(root), 0)
    return found


# ---- checkpoints --------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def evaluation_dir(run: PathLike, step: int) -> Path:
    """Where the outputs of the evaluation at `step` go (the ARC submission JSON)."""
    return Path(run) / EVALUATIONS_DIR / checkpoint_name(step)


def checkpoints(run: PathLike) -> list[tuple[int, Path]]:
    """The run's complete checkpoints (each renamed into place whole), oldest first."""
    root = Path(run) / CHECKPOINTS_DIR
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := CHECKPOINT_NAME_RE.match(p.name))]
    return sorted((s, p) for s, p in found if p.is_dir())


# ---- the JSON-lines ledgers ---------------------------------------------------------------------


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, in file order.

    A line torn by a writer killed mid-append (no newline, or not JSON) and a line that is not
    an object are skipped; a missing file reads as empty. Every ledger of a run is read here.
    """
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def append_jsonl(path: PathLike, objects: Iterable[dict[str, Any]], *, fsync: bool = False) -> int:
    """Append one line per object; each line is one `write` on an O_APPEND descriptor, so a
    process killed at any moment leaves whole lines (a power cut may leave a torn last one,
    which `read_jsonl` skips and `cut_torn_tail` removes). Returns the number of lines."""
    lines = [json.dumps(o, default=str, allow_nan=True).encode() + b"\n" for o in objects]
    if not lines:
        return 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for line in lines:
            os.write(fd, line)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return len(lines)


def cut_torn_tail(path: PathLike) -> None:
    """Remove a last line without its newline (a write cut by a power failure)."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def read_findings(run: PathLike) -> list[dict[str, Any]]:
    """The findings of a run, one per id, in the order they were written."""
    by_id: dict[str, dict[str, Any]] = {}
    for f in read_jsonl(Path(run) / FINDINGS_FILE):
        if "id" in f:
            by_id.setdefault(str(f["id"]), f)
    return list(by_id.values())


def read_patches(run: PathLike) -> list[dict[str, Any]]:
    """Every record of the run's patch ledger, oldest first."""
    return read_jsonl(Path(run) / PATCHES_FILE)


def read_lineage(run: PathLike) -> list[dict[str, Any]]:
    """The run's restarts (rollbacks), oldest first."""
    return read_jsonl(Path(run) / LINEAGE_FILE)


def superseded_findings(run: PathLike) -> set[str]:
    """Ids of findings made on a branch that a rollback abandoned (kept in the record, but no
    longer describing the run)."""
    return {str(i) for e in read_lineage(run) for i in e.get("superseded_findings", [])}


def live_findings(run: PathLike) -> list[dict[str, Any]]:
    """The findings that describe the run's current timeline (superseded ones left out)."""
    gone = superseded_findings(run)
    return [f for f in read_findings(run) if str(f["id"]) not in gone]


def read_summary(run: PathLike) -> dict[str, Any] | None:
    """The daemon's summary of the run (watch/summary.py), or None when no daemon wrote one."""
    try:
        obj = json.loads((Path(run) / SUMMARY_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def run_health(run: PathLike) -> str | None:
    """healthy, info, warning or critical from the run's live findings; None when no daemon
    ever watched it (no findings.jsonl: the dashboard tells "never watched" from "healthy")."""
    if not (Path(run) / FINDINGS_FILE).exists():
        return None
    return worst(f.get("severity") for f in live_findings(run))
