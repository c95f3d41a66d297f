"""What the doctor found for a run: the daemon's ``findings.jsonl``, or one diagnosis pass.

The dashboard never evaluates rules itself. It shows what `hrm-doctor watch` wrote; for a run
nobody watched (no ``findings.jsonl``) a page about that run calls the library's
`hrm_doctor.diagnose` once, while the Runs table of a whole root says "not diagnosed" (reading
every run of a sweep through the engine would not scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_doctor.rundir import (
    FINDINGS_FILE,
    PATCHES_FILE,
    read_findings,
    read_patches,
    superseded_findings,
)
from hrm_doctor.severity import SEVERITIES, STATUSES, severity_rank, worst

__all__ = [
    "FINDINGS_FILE",
    "PATCHES_FILE",
    "SEVERITIES",
    "STATUSES",
    "Diagnosis",
    "diagnose",
    "severity_rank",
    "status_of",
]


@dataclass(frozen=True)
class Diagnosis:
    """A run's findings and overall status, and where they came from."""

    source: str  # "daemon" (findings.jsonl), "explain" (one engine pass), "none" or "error"
    status: str | None  # healthy | info | warning | critical; None when not diagnosed
    findings: tuple[dict[str, Any], ...] = ()
    note: str = ""
    patches: tuple[dict[str, Any], ...] = field(default=())

    @property
    def newest(self) -> dict[str, Any] | None:
        """The finding with the latest first step (ties: the most severe)."""
        if not self.findings:
            return None
        return max(
            self.findings,
            key=lambda f: (_int(f.get("first_step")), severity_rank(str(f.get("severity")))),
        )


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


def status_of(findings: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    """The most severe live finding's severity, or "healthy" (superseded ones do not count)."""
    return worst(str(f.get("severity", "info")) for f in findings if not f.get("superseded"))


def daemon_findings(run: str | Path) -> list[dict[str, Any]] | None:
    """The daemon's findings, those of an abandoned branch marked `superseded`; None when no
    daemon ever wrote the file."""
    if not (Path(run) / FINDINGS_FILE).exists():
        return None
    gone = superseded_findings(run)
    return [dict(f, superseded=True) if f["id"] in gone else f for f in read_findings(run)]


def diagnose_once(run: str | Path) -> Diagnosis:
    """One pass of the rule engine over the run, through the library API."""
    from hrm_doctor import diagnose as diagnose_run
    from hrm_doctor.errors import UserError

    try:
        report = diagnose_run(run)
    except UserError as exc:
        return Diagnosis("error", None, note=f"cannot diagnose: {exc}")
    except Exception as exc:  # the engine's bug must not take the dashboard down
        return Diagnosis("error", None, note=f"the diagnosis failed: {exc!r}")
    return Diagnosis(
        "explain",
        report.status,
        tuple(f.to_json() for f in report.findings),
        note="diagnosed once by the rule engine (no daemon is watching this run)",
    )


NOT_DIAGNOSED = "not diagnosed: no daemon watches this run (start `hrm-doctor watch` on it)"


def diagnose(run: str | Path, *, engine: bool = True) -> Diagnosis:
    """The daemon's findings when it wrote any file, else one diagnosis pass (with `engine`),
    else "not diagnosed"."""
    patches = tuple(sorted(read_patches(run), key=lambda r: float(r.get("time") or 0.0)))
    found = daemon_findings(run)
    if found is not None:
        return Diagnosis(
            "daemon",
            status_of(found),
            tuple(found),
            note="written by `hrm-doctor watch` (findings.jsonl)",
            patches=patches,
        )
    if not engine:
        return Diagnosis("none", None, note=NOT_DIAGNOSED, patches=patches)
    d = diagnose_once(run)
    return Diagnosis(d.source, d.status, d.findings, d.note, patches)
