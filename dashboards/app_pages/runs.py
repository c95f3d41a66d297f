"""Runs: every run under the root with its diagnosis status, progress and newest finding."""

from __future__ import annotations

from urllib.parse import quote

import streamlit as st

from dashboards import data, findings, ui

ui.page_config("Runs")
root = ui.sidebar_root()
interval = ui.live_interval()
st.title("Runs")

STATUS_CSS = {
    "critical": "color: #b91c1c; font-weight: 600",
    "warning": "color: #b45309; font-weight: 600",
    "info": "color: #1d4ed8",
    "healthy": "color: #15803d",
}
MAX_FINDINGS_LISTED = 3
MAX_RUNS_LISTED = 20
STYLED_ROWS_MAX = 200
COLUMNS = [
    "status",
    "run",
    "writer",
    "last step",
    "steps/s",
    "loss",
    "grad norm",
    "findings",
    "newest finding",
    "last write (s ago)",
]


@st.fragment(run_every=interval)
def runs_table() -> None:
    df = data.runs_overview(root)
    if df.empty:
        st.info(f"No runs under `{root}` yet. Runs appear as soon as a trainer writes one.")
        return
    df = df.assign(_rank=df["status"].map(findings.severity_rank).fillna(-1))
    df = df.sort_values(["_rank", "run"], ascending=[False, True]).drop(columns="_rank")
    df = df.reset_index(drop=True)
    counts = df["status"].value_counts()
    tiles = st.columns(5)
    tiles[0].metric("Runs", len(df))
    tiles[1].metric("Critical", int(counts.get("critical", 0)))
    tiles[2].metric("Warning", int(counts.get("warning", 0)))
    tiles[3].metric("Healthy", int(counts.get("healthy", 0)))
    tiles[4].metric("Being written", int((df["writer"] == "running").sum()))

    # The run name links to its charts (a relative URL: works under any base path).
    view = df.reindex(columns=COLUMNS).assign(
        run=["run?run=" + quote(r, safe="/") for r in df["run"]]
    )
    # Colour the status column of a table people scan by eye; a sweep's thousand rows are
    # sorted by status instead (a Styler renders CSS per cell: a second at that size).
    if len(view) <= STYLED_ROWS_MAX:
        view = view.style.map(lambda s: STATUS_CSS.get(s, "color: #6b7280"), subset=["status"])
    event = st.dataframe(
        view,
        hide_index=True,
        key="runs_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "status": st.column_config.TextColumn("Status", width="small"),
            "run": st.column_config.LinkColumn("Run", display_text=r"run\?run=(.*)"),
            "writer": st.column_config.TextColumn("Writer", width="small"),
            "last step": st.column_config.NumberColumn("Last step", format="localized"),
            "steps/s": st.column_config.NumberColumn(
                "Steps/s",
                format="%.2f",
                help="1 / median sys/step_time_s of the last 100 steps (else wall clock)",
            ),
            "loss": st.column_config.LineChartColumn("LM loss", width="small"),
            "grad norm": st.column_config.LineChartColumn(
                "Grad norm", width="small", help="log10 of grad/norm over the run"
            ),
            "findings": st.column_config.NumberColumn("Findings", width="small"),
            "newest finding": st.column_config.TextColumn("Newest finding", width="large"),
            "last write (s ago)": st.column_config.NumberColumn(
                "Last write (s ago)", format="%.0f"
            ),
        },
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows:
        rel = str(df.loc[rows[0], "run"])
        with st.container(horizontal=True):
            st.markdown(f"**{rel}**")
            ui.page_link("run", "Charts", rel, icon=":material/monitoring:")
            ui.page_link("act", "ACT", rel, icon=":material/timer:")
            ui.page_link("embeddings", "Embeddings", rel, icon=":material/grid_on:")
            ui.page_link("diagnosis", "Diagnosis", rel, icon=":material/medical_services:")
    else:
        st.caption("Select a row to open that run; click a column header to sort.")
    needs_attention(df)


def needs_attention(df) -> None:
    """The critical and warning runs with their findings and suggested patches, as text (the
    findings of these runs only are read)."""
    warning = findings.severity_rank("warning")
    flagged = [r for r, s in zip(df["run"], df["status"]) if findings.severity_rank(s) >= warning]
    if not flagged:
        return
    st.subheader("Needs attention")
    for rel in flagged[:MAX_RUNS_LISTED]:
        d = data.diagnosis(root / rel, engine=False)
        serious = [
            f
            for f in d.findings
            if findings.severity_rank(f.get("severity")) >= findings.severity_rank("warning")
        ]
        serious.sort(
            key=lambda f: (
                -findings.severity_rank(f.get("severity")),
                int(f.get("first_step") or 0),
            )
        )
        with st.container(border=True):
            with st.container(horizontal=True, vertical_alignment="center"):
                ui.status_badge(d.status)
                st.markdown(f"**{rel}**")
                ui.page_link("diagnosis", "Diagnosis", rel, icon=":material/medical_services:")
                ui.page_link("run", "Charts", rel, icon=":material/monitoring:")
            for f in serious[:MAX_FINDINGS_LISTED]:
                s = f.get("suggestion") or {}
                fix = " ".join(s.get("overrides") or [])
                line = f"**{f.get('severity')}** · step {f.get('first_step')} · {f.get('message')}"
                if fix:
                    line += (
                        f"  \n:material/healing: suggested ({s.get('apply', 'restart')}): `{fix}`"
                    )
                st.markdown(line)
            if len(serious) > MAX_FINDINGS_LISTED:
                st.caption(f"and {len(serious) - MAX_FINDINGS_LISTED} more on its Diagnosis page")
    if len(flagged) > MAX_RUNS_LISTED:
        st.caption(f"and {len(flagged) - MAX_RUNS_LISTED} more runs: sort the table by status")


runs_table()
