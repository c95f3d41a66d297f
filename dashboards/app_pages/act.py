"""ACT: how the model spends its segments: halting steps, Q-halt / Q-continue, halting accuracy."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data, ui
from dashboards.live import Series
from dashboards.page import RunView, run_page
from dashboards.panels import ACT_PANELS, render_panels


def halt_heatmap(path: str, version: int, lo: int, hi: int, halt_max: int) -> None:
    hist = data.halt_histogram(path, version, lo, hi, halt_max)
    if hist is None:
        st.caption("Halting-step distribution: act/halt_steps not logged by this run.")
        return
    x, values, frac = hist
    ui.chart_title(
        f"Halting-step distribution (halt_max_steps = {halt_max})",
        help="act/halt_steps: the share of sequences halting at each ACT step, per step bin. "
        "Mass piling up at the top row means ACT stopped halting early.",
    )
    fig = charts.heatmap_figure(
        x,
        list(values),
        frac,
        "",
        colorbar="fraction",
        colorscale="Blues",
        percent=True,
        zmin=0,
        y_title="ACT steps at halt",
    )
    charts.show(fig, key="chart:halt_heatmap")


def q_band(path: str, version: int, name: str, lo: int, hi: int, color: str, extra) -> None:
    bands = data.tensor_bands(path, version, name, lo, hi)
    if bands is None:
        st.caption(f"{name}: per-sample Q logits not logged by this run.")
        return
    x, q = bands
    title = {"act/q_halt": "Q-halt logits", "act/q_continue": "Q-continue logits and target"}
    ui.chart_title(
        title.get(name, name),
        help=f"{name}: per-sample logits, median and 25–75% / 5–95% bands per step bin",
    )
    fig = charts.band_figure(x, q, "", color=color, name=name, extra=extra)
    charts.show(fig, key=f"chart:{name}")


def act_body(view: RunView) -> None:
    lr, lo, hi = view.run, view.lo, view.hi
    halt_max = int((lr.config.get("arch") or {}).get("halt_max_steps") or 16)
    p, v = str(view.path), lr.version
    with st.container(border=True):
        halt_heatmap(p, v, lo, hi, halt_max)
    left, right = st.columns(2, gap="medium")
    with left, st.container(border=True):
        q_band(p, v, "act/q_halt", lo, hi, charts.PALETTE[0], ())
    with right, st.container(border=True):
        target = [
            Series("target", s.x, s.y, s.bad_x, s.bad_kind)
            for s in data.chart_series(p, v, "act/target_q_continue/mean", lo, hi, False)
        ]
        q_band(p, v, "act/q_continue", lo, hi, charts.PALETTE[1], target)
    latest = {n: data.latest_tensor(p, v, n) for n in ("act/q_halt", "act/q_continue")}
    latest = {n: t for n, t in latest.items() if t is not None}
    ctx = view.panels()
    if latest:
        left, right = st.columns(2, gap="medium")
        step = max(t[0] for t in latest.values())
        with left, st.container(border=True):
            ui.chart_title(f"Q logits at step {step:,}", help="the newest per-sample Q logits")
            fig = charts.histogram_figure({n: t[1] for n, t in latest.items()}, "")
            charts.show(fig, key="chart:q_latest")
        with right:
            render_panels(ACT_PANELS[:1], ctx, columns=1)
        render_panels(ACT_PANELS[1:], ctx)
    else:
        render_panels(ACT_PANELS, ctx)


run_page("ACT", act_body)
