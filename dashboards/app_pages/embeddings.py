"""Embeddings: the SignSGD-trained puzzle embeddings: sign flips, rows touched, norms."""

from __future__ import annotations

import streamlit as st

from dashboards.page import RunView, run_page
from dashboards.panels import EMBEDDING_PANELS, render_panels


def embeddings_body(view: RunView) -> None:
    st.caption(
        "Puzzle embeddings are trained with SignSGD: each update moves every touched entry by "
        "±lr, so a sign-flip fraction near 0.5 means the updates are noise, and a norm that "
        "keeps growing means weight decay no longer balances them."
    )
    render_panels(EMBEDDING_PANELS, view.panels())


run_page("Embeddings", embeddings_body)
