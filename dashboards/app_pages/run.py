"""Run: one run's live charts grouped by theme (losses, accuracy, gradients, updates, system)."""

from __future__ import annotations

import streamlit as st

from dashboards.page import RunView, run_page
from dashboards.panels import THEMES, render_panels


def run_body(view: RunView) -> None:
    ctx = view.panels()
    # Tabs that track state run only the open tab's panels (a lazy, fast first render).
    tabs = st.tabs(list(THEMES), key="theme", bind="query-params")
    for tab, panels in zip(tabs, THEMES.values()):
        if tab.open is False:
            continue
        with tab:
            render_panels(panels, ctx)


run_page(
    "Run", run_body, header="", no_steps="No steps logged yet: charts appear with the first step."
)
