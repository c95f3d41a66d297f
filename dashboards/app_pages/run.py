"""Run: one run's live charts grouped by theme (losses, accuracy, gradients, updates, system)."""

from __future__ import annotations

import streamlit as st

from dashboards import data, ui
from dashboards.panels import THEMES, PanelContext, render_panels

ui.page_config("Run")
picked = ui.pick_run()
if picked is None:
    st.stop()
rel, path = picked
interval = ui.live_interval()


@st.fragment(run_every=interval)
def run_body() -> None:
    lr = data.try_live_run(path)
    if lr is None:
        st.error(f"{rel}: not a readable run directory")
        return
    diagnosis = data.diagnosis(path, lr)
    ui.run_header(rel, lr, diagnosis, page="")
    bounds = lr.step_bounds()
    if bounds is None:
        st.info("No steps logged yet: charts appear with the first step.")
        return
    lo, hi = ui.step_range(bounds)
    ctx = PanelContext(str(path), lr, lr.version, lo, hi, diagnosis.findings)
    # Tabs that track state run only the open tab's panels (a lazy, fast first render).
    tabs = st.tabs(list(THEMES), key="theme", bind="query-params")
    for tab, panels in zip(tabs, THEMES.values()):
        if tab.open is False:
            continue
        with tab:
            render_panels(panels, ctx)


run_body()
