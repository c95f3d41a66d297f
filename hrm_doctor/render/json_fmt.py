"""``--format json``: the DESIGN.md contract (run, status, steps, findings), plus notes."""

from __future__ import annotations

import json

from hrm_doctor.diagnosis import Report


def render(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, allow_nan=False, default=str) + "\n"
