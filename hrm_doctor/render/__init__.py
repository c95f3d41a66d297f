"""Render a `Report` for people and for CI: text, markdown, json, junit, github, html.

Every renderer is deterministic (no clock, no random ids): the same run gives the same bytes.
"""

from __future__ import annotations

import importlib

from hrm_doctor.diagnosis import Report

FORMATS = ("text", "markdown", "json", "junit", "github", "html")


def render(report: Report, fmt: str, *, color: bool = False, width: int = 100) -> str:
    """The report in one of FORMATS, as text (html: one self-contained page)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    module = importlib.import_module(f"hrm_doctor.render.{fmt}_fmt")
    if fmt == "text":
        return module.render(report, color=color, width=width)
    return module.render(report)
