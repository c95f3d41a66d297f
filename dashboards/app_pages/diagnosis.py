"""Diagnosis: the findings timeline; each finding's evidence, suggestion and patch history."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import charts, control, data, findings, ui
from dashboards.page import RunView, run_page

ALLOW_APPLY = data.settings().allow_apply
MAX_CARDS = 25
MAX_EVIDENCE = 8  # scalar evidence items shown under the chart


def evidence_chart(f: dict, path: Path, version: int, bounds: tuple[int, int]) -> None:
    metric = f.get("metric")
    first = f.get("first_step")
    if not metric or first is None:
        st.caption("No metric named by this finding.")
        return
    first = int(first)
    last = int(f.get("last_step") if f.get("last_step") is not None else first)
    span = max(last - first, 20)
    lo, hi = max(bounds[0], first - 2 * span), min(bounds[1], last + span // 2)
    rank = f.get("rank")
    series = data.chart_series(str(path), version, metric, lo, hi, rank is not None)
    if rank is not None:  # the rank the finding is about, when the run has several
        series = [s for s in series if s.label in (f"rank {rank}", metric)] or series[:1]
    if not series:
        st.caption(f"{metric}: not logged by this run.")
        return
    onset = charts.Onset(first, last, str(f.get("severity")), f"onset @ {first:,}")
    st.markdown(f"**Evidence** · `{metric}` · steps {lo:,}–{hi:,}")
    fig = charts.line_figure(
        series,
        "",
        log_y=metric.startswith("grad/norm") or metric.endswith("loss"),
        onsets=[onset],
        height=280,
    )
    charts.show(fig, key=f"evidence:{f.get('id')}")
    ev = {
        k: v
        for k, v in (f.get("evidence") or {}).items()
        if isinstance(v, (int, float, str, bool)) or v is None
    }
    if ev:
        st.caption(" · ".join(f"{k}: `{_fmt(v)}`" for k, v in list(ev.items())[:MAX_EVIDENCE]))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def suggestion_block(f: dict, path: Path, patches: list[dict]) -> None:
    s = f.get("suggestion") or {}
    overrides = list(s.get("overrides") or [])
    mode = str(s.get("apply", "restart"))
    st.markdown("**Suggested patch**")
    if overrides:
        st.code(" ".join(overrides), language="bash", wrap_lines=True)
        ui_mode = ui.APPLY_TEXT.get(mode, mode)
        st.markdown(f":material/bolt: **{mode}** — {ui_mode.split(': ', 1)[-1]}")
    else:
        st.caption("No config change suggested.")
    for label, key in (
        ("Why", "rationale"),
        ("Then monitor", "monitor"),
        ("If it fails", "fallback"),
    ):
        if s.get(key):
            st.markdown(f"**{label}:** {s[key]}")
    applied = [p for p in patches if p.get("state") == "applied"]
    if ALLOW_APPLY and overrides:
        if applied:
            st.button(
                "Applied",
                key=f"apply:{f.get('id')}",
                disabled=True,
                help=f"applied at step {applied[-1].get('step')}",
            )
        elif st.button(
            "Apply patch", key=f"apply:{f.get('id')}", type="primary", icon=":material/healing:"
        ):
            try:
                rec = control.request_apply(path, f)
            except ValueError as exc:
                st.warning(str(exc))
            else:
                if rec["state"] == "requested":
                    st.success(
                        "Requested: the running trainer applies it at its next step and "
                        "acknowledges it (see the patch history below)."
                    )
                elif rec["state"] == "proposed" and rec.get("apply") == "hot":
                    st.info(
                        "Queued: another patch is in flight or cooling down; `hrm-doctor watch "
                        "--apply` on this run sends it when the guards allow."
                    )
                elif rec["state"] == "proposed":
                    st.info(
                        "Proposed: this patch needs a rollback and restart; run the trainer "
                        "under `hrm-doctor run --apply` to have it done."
                    )
                else:
                    st.warning(f"Not applied ({rec['state']}): {rec.get('reason')}")
    elif overrides and not applied:
        st.caption(
            "To apply from here, start the dashboard with `--allow-apply`; "
            "or run `hrm-doctor watch --apply`."
        )


def patch_history(patches: list[dict]) -> None:
    if not patches:
        st.caption("Patch history: no patch proposed or applied yet.")
        return
    rows = [
        {
            "state": p.get("state"),
            "step": p.get("step"),
            "apply": p.get("apply"),
            "overrides": " ".join(p.get("overrides") or []),
            "before": _kv(p.get("before")),
            "after": _kv(p.get("after")),
            "reason": p.get("reason", ""),
        }
        for p in patches
    ]
    st.markdown("**Patch history**")
    st.dataframe(rows, hide_index=True)


def _kv(d) -> str:
    if not isinstance(d, dict):
        return "" if d is None else str(d)
    return ", ".join(f"{k}={v}" for k, v in d.items())


def finding_card(f: dict, path: Path, patches: list[dict], version: int, bounds) -> None:
    sev = str(f.get("severity", "info"))
    with st.container(border=True):
        with st.container(horizontal=True, vertical_alignment="center"):
            ui.status_badge(sev)
            st.badge(str(f.get("category", "?")), color="gray")
            first, last = f.get("first_step"), f.get("last_step")
            where = f"steps {first:,}–{last:,}" if last is not None else f"step {first:,}"
            rank = f.get("rank")
            st.caption(
                f"`{f.get('rule')}` ({f.get('pack', '?')}) · {where}"
                + (f" · rank {rank}" if rank is not None else "")
                + f" · {f.get('metric', '')}"
            )
        st.markdown(f"##### {f.get('message', f.get('id'))}")
        left, right = st.columns([3, 2], gap="large")
        with left:
            if bounds is not None:
                evidence_chart(f, path, version, bounds)
        with right:
            suggestion_block(f, path, patches)
        patch_history(patches)


def diagnosis_body(view: RunView) -> None:
    lr, d, bounds = view.run, view.diagnosis, view.bounds
    if d.status is None:
        st.info(d.note, icon=":material/help:")
        return
    st.caption(f"Findings {d.note}.")
    if not d.findings:
        st.success(
            "No findings: every rule that applies to this run's metrics is quiet.",
            icon=":material/check_circle:",
        )
        return
    with st.container(border=True):
        ui.chart_title("Findings timeline", help="each finding from its first to its last step")
        charts.show(charts.timeline_figure(d.findings, bounds), key="timeline")
    present = [
        s for s in reversed(findings.SEVERITIES) if any(f.get("severity") == s for f in d.findings)
    ]
    shown = (
        st.pills(
            "Severity", present, default=present, selection_mode="multi", key="severity_filter"
        )
        or []
    )
    chosen = [f for f in d.findings if f.get("severity") in shown]
    # Most severe first; within a severity in order of onset: the root cause leads.
    chosen.sort(
        key=lambda f: (-findings.severity_rank(f.get("severity")), int(f.get("first_step") or 0))
    )
    for f in chosen[:MAX_CARDS]:
        ps = [p for p in d.patches if p.get("finding_id") == f.get("id")]
        finding_card(f, view.path, ps, lr.version, bounds)
    if len(chosen) > MAX_CARDS:
        st.caption(f"{len(chosen) - MAX_CARDS} more findings not shown: narrow the severity.")


run_page("Diagnosis", diagnosis_body, no_steps=None, step_range=False)
