"""Embeddings: the SignSGD-trained puzzle embeddings: sign flips, rows touched, norms."""

from __future__ import annotations

import streamlit as st

from dashboards import data, ui
from dashboards.panels import EMBEDDING_PANELS, PanelContext, render_panels

ui.page_config("Embeddings")
picked = ui.pick_run()
if picked is None:
    st.stop()
rel, path = picked
interval = ui.live_interval()


@st.fragment(run_every=interval)
def embeddings_body() -> None:
    lr = data.try_live_run(path)
    if lr is None:
        st.error(f"{rel}: not a readable run directory")
        return
    diagnosis = data.diagnosis(path, lr)
    ui.run_header(rel, lr, diagnosis, page="Embeddings")
    bounds = lr.step_bounds()
    if bounds is None:
        st.info("No steps logged yet.")
        return
    lo, hi = ui.step_range(bounds)
    st.caption(
        "Puzzle embeddings are trained with SignSGD: each update moves every touched entry by "
        "±lr, so a sign-flip fraction near 0.5 means the updates are noise, and a norm that "
        "keeps growing means weight decay no longer balances them."
    )
    ctx = PanelContext(str(path), lr, lr.version, lo, hi, diagnosis.findings)
    render_panels(EMBEDDING_PANELS, ctx)


embeddings_body()
