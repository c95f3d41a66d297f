"""The dashboard's one write: applying a finding's suggested patch, through the same guarded path
as `hrm-doctor watch --apply` (hrm_doctor.watch.patches.PatchManager): hot keys within bounds go
to the running trainer's control channel, once per finding, never the same overrides twice, with
the cool-down and hourly limit; a suggestion that needs a restart is recorded as proposed (a
rollback and restart is `hrm-doctor run --apply`'s job). Every step lands in RUN/patches.jsonl.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def request_apply(run: str | Path, finding: dict[str, Any], *, user: str = "dashboard") -> dict:
    """Apply `finding`'s suggestion to `run`; return the newest patch record written."""
    from hrm_doctor.engine.finding import Finding
    from hrm_doctor.watch.patches import PatchManager

    suggestion = finding.get("suggestion") or {}
    if not suggestion.get("overrides"):
        raise ValueError(f"finding {finding.get('id')!r} suggests no overrides to apply")
    records = PatchManager(run, apply=True, manual=True).on_finding(Finding.from_json(finding))
    if not records:
        raise ValueError(f"finding {finding.get('id')!r} already has a patch (see its history)")
    return dict(records[-1], requested_by=user)
