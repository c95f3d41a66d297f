"""Compare: one metric overlaid across two or more runs, and where their configs differ."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, data, ui
from dashboards.live import Series

ui.page_config("Compare")
root = ui.sidebar_root()
interval = ui.live_interval()
st.title("Compare runs")
DEFAULT_METRICS = ("train/lm_loss", "grad/norm", "train/accuracy", "act/halt_at_max_frac")

names = data.run_names(str(root))
if len(names) < 2:
    st.info(f"Comparing needs two runs; `{root}` has {len(names)}.")
    st.stop()
chosen = st.multiselect("Runs", names, default=names[:2], key="compare_runs")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def config_diff(runs: dict[str, Any], show_all: bool) -> pd.DataFrame:
    flat = {rel: flatten(lr.config) for rel, lr in runs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    rows = []
    for k in keys:
        vals = [flat[r].get(k, "—") for r in runs]
        if show_all or len({repr(v) for v in vals}) > 1:
            rows.append(
                {"key": k, **{r: "null" if v is None else str(v) for r, v in zip(runs, vals)}}
            )
    return pd.DataFrame(rows)


@st.fragment(run_every=interval)
def compare_body() -> None:
    if len(chosen) < 2:
        st.info("Pick at least two runs.")
        return
    runs = {rel: lr for rel in chosen if (lr := data.try_live_run(root / rel)) is not None}
    metrics: dict[str, None] = {}
    for lr in runs.values():
        metrics.update(dict.fromkeys(lr.metrics))
    default = [m for m in DEFAULT_METRICS if m in metrics][:2] or list(metrics)[:1]
    picked = st.multiselect("Metrics", list(metrics), default=default, key="compare_metrics")
    log_y = st.toggle("log y", value=False, key="compare_log")
    for m in picked:
        series: list[Series] = []
        for rel, lr in runs.items():
            for s in data.chart_series(str(lr.path), lr.version, m, None, None, False):
                series.append(Series(rel, s.x, s.y, s.bad_x, s.bad_kind))
        with st.container(border=True):
            ui.chart_title(m, help="mean over ranks, one line per run")
            fig = charts.line_figure(series, "", log_y=log_y)
            charts.show(fig, key=f"compare:{m}")
    st.subheader("Config differences")
    show_all = st.toggle("show every key", value=False, key="compare_all_keys")
    diff = config_diff(runs, show_all)
    if diff.empty:
        st.caption("The configs are identical.")
    else:
        st.dataframe(diff, hide_index=True)


compare_body()
