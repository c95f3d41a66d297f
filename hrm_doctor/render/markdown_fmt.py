"""``--format markdown``: fits a CI step summary ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from hrm_doctor.diagnosis import Report
from hrm_doctor.render.common import counts, evidence_text, steps_text

_MARK = {"critical": "**CRITICAL**", "warning": "**warning**", "info": "info"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    out = [f"## hrm-doctor: `{report.run}` is {report.status}", ""]
    out.append(f"{report.steps} steps, {counts(report.findings)}.")
    out.append("")
    if report.findings:
        out += [
            "| severity | finding | category | steps | rank | metric |",
            "|---|---|---|---|---|---|",
        ]
        for f in report.findings:
            rank = "" if f.rank is None else str(f.rank)
            out.append(
                f"| {_MARK[f.severity]} | `{f.id}` | {f.category} | {steps_text(f)} | {rank} | "
                f"{_cell(f.metric or '')} |"
            )
        out.append("")
    for f in report.findings:
        out.append(f"### {f.severity}: `{f.id}` ({f.pack}/{f.category})")
        out.append("")
        out.append(_cell(f.message))
        out.append("")
        ev = evidence_text(f)
        if ev:
            out.append(f"- **evidence**: {_cell(ev)}")
        sg = f.suggestion
        overrides = " ".join(f"`{o}`" for o in sg.overrides) or "no config change"
        out.append(f"- **suggestion** ({sg.apply}): {overrides}")
        for key in ("rationale", "monitor", "fallback"):
            text = getattr(sg, key)
            if text:
                out.append(f"  - {key}: {_cell(text)}")
        out.append("")
    if report.baseline:
        b = report.baseline
        out += [f"### Compared with `{b['run']}` ({b['status']}, {b['steps']} steps)", ""]
        if b["new_findings"]:
            out.append("New findings: " + ", ".join(f"`{x}`" for x in b["new_findings"]))
        if b["resolved_rules"]:
            out.append("No longer firing: " + ", ".join(f"`{x}`" for x in b["resolved_rules"]))
        if b["metrics"]:
            out += [
                "",
                "| metric | summary | this run | baseline | change |",
                "|---|---|---|---|---|",
            ]
            for m in b["metrics"]:
                change = "" if m["change"] is None else f"{m['change']:+.1%}"
                flag = " (worse)" if m["worse"] else ""
                out.append(
                    f"| {m['metric']} | {m['summary']} | {m['run']} | {m['baseline']} | {change}{flag} |"
                )
        if b["config_diff"]:
            out += ["", "| config key | baseline | this run |", "|---|---|---|"]
            for c in b["config_diff"]:
                out.append(
                    f"| `{c['key']}` | {_cell(str(c['baseline']))} | {_cell(str(c['run']))} |"
                )
        out.append("")
    if report.notes:
        out += ["<details><summary>" + f"{len(report.notes)} rules skipped" + "</summary>", ""]
        for n in report.notes:
            out.append(f"- `{n.rule}` ({n.pack}): {_cell(n.message)}")
        out += ["", "</details>", ""]
    return "\n".join(out)
