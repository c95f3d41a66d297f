"""Small helpers shared by the renderers."""

from __future__ import annotations

from typing import Any

from hrm_doctor.engine.finding import Finding

_SKIP_EVIDENCE = {"recent", "per_rank", "config", "onsets"}


def steps_text(f: Finding) -> str:
    return str(f.first_step) if f.first_step == f.last_step else f"{f.first_step}..{f.last_step}"


def evidence_text(f: Finding, limit: int = 8) -> str:
    """The evidence's headline numbers, one line."""
    parts = []
    for k, v in f.evidence.items():
        if k in _SKIP_EVIDENCE or isinstance(v, (dict, list)):
            continue
        parts.append(f"{k}={_fmt(v)}")
        if len(parts) >= limit:
            break
    if "config" in f.evidence and isinstance(f.evidence["config"], dict):
        parts.extend(f"{k}={_fmt(v)}" for k, v in f.evidence["config"].items())
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def counts(findings: list[Finding]) -> str:
    n = {s: sum(1 for f in findings if f.severity == s) for s in ("critical", "warning", "info")}
    if not findings:
        return "no findings"
    return ", ".join(f"{v} {k}" for k, v in n.items() if v)
