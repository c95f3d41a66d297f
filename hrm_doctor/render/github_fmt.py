"""``--format github``: GitHub Actions workflow commands (annotations), one per finding."""

from __future__ import annotations

from hrm_doctor.diagnosis import Report
from hrm_doctor.render.common import steps_text

_LEVEL = {"critical": "error", "warning": "warning", "info": "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(report: Report) -> str:
    lines = []
    for f in report.findings:
        title = _prop(f"hrm-doctor {f.severity}: {f.id} ({f.category})")
        body = [f"{report.run}, steps {steps_text(f)}: {f.message}"]
        if f.suggestion.overrides:
            body.append(f"suggestion ({f.suggestion.apply}): {' '.join(f.suggestion.overrides)}")
        if f.suggestion.rationale:
            body.append(f.suggestion.rationale)
        lines.append(f"::{_LEVEL[f.severity]} title={title}::{_data(chr(10).join(body))}")
    if not report.findings:
        lines.append(
            f"::notice title={_prop('hrm-doctor: healthy')}::{_data(f'{report.run}: {report.steps} steps, no findings')}"
        )
    return "\n".join(lines) + "\n"
