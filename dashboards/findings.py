"""What the doctor found for a run: the daemon's ``findings.jsonl``, or one `explain` pass.

The dashboard never evaluates rules itself. It shows what `hrm-doctor watch` wrote; for a run
nobody watched (no ``findings.jsonl``) it runs `hrm-doctor explain --format json` once, in
process, when the rule engine is installed, and otherwise says that the run is not diagnosed.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINDINGS_FILE = "findings.jsonl"
PATCHES_FILE = "patches.jsonl"
SEVERITIES = ("info", "warning", "critical")  # increasing
STATUSES = ("healthy", *SEVERITIES)
_RANK = {s: i for i, s in enumerate(STATUSES)}


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
            key=lambda f: (_int(f.get("first_step")), _RANK.get(str(f.get("severity")), 0)),
        )


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file; a torn last line (a writer mid-append) is skipped."""
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return []
    return out


def status_of(findings: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    """The most severe finding's severity, or "healthy"."""
    worst = "healthy"
    for f in findings:
        if f.get("superseded"):  # made on a branch that a rollback abandoned
            continue
        sev = str(f.get("severity", "info"))
        if _RANK.get(sev, 0) > _RANK[worst]:
            worst = sev
    return worst


def severity_rank(status: str | None) -> int:
    return _RANK.get(status or "", -1)


def read_findings(run: str | Path) -> list[dict[str, Any]] | None:
    """The daemon's findings (one per id, in file order), or None when it never wrote the file."""
    path = Path(run) / FINDINGS_FILE
    if not path.exists():
        return None
    from hrm_doctor.supervisor import read_lineage

    superseded = {i for e in read_lineage(run) for i in e.get("superseded_findings", [])}
    by_id: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(read_jsonl(path)):
        fid = str(f.get("id", f"#{i}"))
        by_id[fid] = dict(f, superseded=True) if fid in superseded else f
    return list(by_id.values())


def read_patches(run: str | Path) -> list[dict[str, Any]]:
    """Every patch record of the run, oldest first."""
    recs = read_jsonl(Path(run) / PATCHES_FILE)
    return sorted(recs, key=lambda r: float(r.get("time") or 0.0))


def explain_available() -> bool:
    """Whether `hrm-doctor explain` (and the rule engine behind it) is installed."""
    try:
        from hrm_doctor.commands import COMMAND_MODULES

        if "explain" not in COMMAND_MODULES:
            return False
        importlib.import_module("hrm_doctor.commands.explain")
        importlib.import_module("hrm_doctor.engine")
    except ImportError:
        return False
    return True


NOT_DIAGNOSED = (
    "not diagnosed yet: no findings.jsonl (start `hrm-doctor watch` on this run) and the rule "
    "engine is not installed"
)


def explain_run(run: str | Path) -> Diagnosis:
    """One pass of the rule engine through `hrm-doctor explain --format json` (the contract)."""
    if not explain_available():
        return Diagnosis("none", None, note=NOT_DIAGNOSED)
    from hrm_doctor.cli import main

    with tempfile.TemporaryDirectory(prefix="hrm-dashboard-") as tmp:
        out = Path(tmp) / "explain.json"
        argv = ["explain", "--run", str(run), "--format", "json", "--fail-on", "never"]
        try:
            rc = main([*argv, "--out", str(out)])
        except SystemExit as exc:  # argparse rejecting a flag this explain does not know
            rc = exc.code if isinstance(exc.code, int) else 2
        except Exception as exc:  # the engine's bug must not take the dashboard down
            return Diagnosis("error", None, note=f"hrm-doctor explain failed: {exc!r}")
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Diagnosis("error", None, note=f"hrm-doctor explain exited {rc} with no report")
    findings = tuple(f for f in report.get("findings", []) if isinstance(f, dict))
    status = str(report.get("status") or status_of(findings))
    return Diagnosis(
        "explain",
        status,
        findings,
        note="diagnosed once by `hrm-doctor explain` (no daemon is watching this run)",
    )


def diagnose(run: str | Path) -> Diagnosis:
    """The daemon's findings when it wrote any file, else one `explain` pass, else none."""
    patches = tuple(read_patches(run))
    found = read_findings(run)
    if found is not None:
        return Diagnosis(
            "daemon",
            status_of(found),
            tuple(found),
            note="written by `hrm-doctor watch` (findings.jsonl)",
            patches=patches,
        )
    d = explain_run(run)
    return Diagnosis(d.source, d.status, d.findings, d.note, patches)
