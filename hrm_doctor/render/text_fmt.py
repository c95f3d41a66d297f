"""``--format text``: a rich rendering for a terminal (plain text when not a terminal)."""

from __future__ import annotations

import io

from hrm_doctor.diagnosis import Report
from hrm_doctor.render.common import counts, evidence_text, steps_text

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan", "healthy": "bold green"}


def render(report: Report, *, color: bool = False, width: int = 100) -> str:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        color_system="standard" if color else None,
        width=width,
        highlight=False,
        soft_wrap=False,
    )
    style = _STYLE.get(report.status, "")
    console.print(
        f"[bold]hrm-doctor[/bold] {escape(report.run)}: [{style}]{report.status}[/{style}]"
        f"  ({report.steps} steps, {counts(report.findings)})"
    )
    if report.findings:
        table = Table(show_lines=False, expand=False, pad_edge=False)
        for col in ("severity", "finding", "category", "steps", "rank", "metric"):
            table.add_column(col)
        for f in report.findings:
            s = _STYLE[f.severity]
            table.add_row(
                f"[{s}]{f.severity}[/{s}]",
                escape(f.id),
                f.category,
                steps_text(f),
                "-" if f.rank is None else str(f.rank),
                escape(f.metric or "-"),
            )
        console.print(table)
    for f in report.findings:
        s = _STYLE[f.severity]
        console.print()
        console.print(
            f"[{s}]{f.severity.upper()}[/{s}] [bold]{escape(f.id)}[/bold] ({f.pack}/{f.category})"
        )
        console.print(f"  {escape(f.message)}")
        ev = evidence_text(f)
        if ev:
            console.print(f"  [dim]evidence:[/dim] {escape(ev)}")
        sg = f.suggestion
        over = " ".join(sg.overrides) if sg.overrides else "(no config change)"
        console.print(f"  [dim]suggestion ({sg.apply}):[/dim] {escape(over)}")
        for key in ("rationale", "monitor", "fallback"):
            text = getattr(sg, key)
            if text:
                console.print(f"    [dim]{key}:[/dim] {escape(text)}")
    if report.notes:
        console.print()
        console.print(f"[dim]notes ({len(report.notes)} rules skipped):[/dim]")
        for n in report.notes:
            console.print(f"  [dim]{escape(n.rule)} ({n.pack}): {escape(n.message)}[/dim]")
    if report.baseline:
        _baseline(console, report.baseline, escape)
    return buf.getvalue()


def _baseline(console, b: dict, escape) -> None:
    console.print()
    console.print(
        f"[bold]compared with {escape(b['run'])}[/bold] ({b['status']}, {b['steps']} steps)"
    )
    if b["new_findings"]:
        console.print(f"  new findings: {escape(', '.join(b['new_findings']))}")
    if b["resolved_rules"]:
        console.print(f"  no longer firing: {escape(', '.join(b['resolved_rules']))}")
    for m in b["metrics"]:
        mark = "[red]worse[/red]" if m["worse"] else ""
        console.print(
            f"  {escape(m['metric'])} ({m['summary']}): {m['run']} vs {m['baseline']} {mark}"
        )
    if b["config_diff"]:
        console.print("  config changes:")
        for c in b["config_diff"]:
            console.print(
                f"    {escape(c['key'])}: {escape(str(c['baseline']))} -> {escape(str(c['run']))}"
            )
