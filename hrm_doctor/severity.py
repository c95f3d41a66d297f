"""Severities and run health: the one order every part of hrm-doctor sorts and compares by.

A finding is info, warning or critical; a run's health is "healthy" or its worst live finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)  # increasing
HEALTHY = "healthy"
STATUSES: tuple[str, ...] = (HEALTHY, *SEVERITIES)  # increasing
SEVERITY_ORDER: dict[str, int] = {s: i for i, s in enumerate(STATUSES)}


def severity_rank(severity: str | None) -> int:
    """0 for healthy, 1..3 for info..critical, -1 for None or a word we do not know."""
    return SEVERITY_ORDER.get(severity or "", -1)


def worst(severities: Iterable[str | None]) -> str:
    """The most severe of `severities`, or "healthy" when there is none."""
    out = HEALTHY
    for s in severities:
        if severity_rank(s) > SEVERITY_ORDER[out]:
            out = str(s)
    return out
