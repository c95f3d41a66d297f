"""hrm-doctor's dashboard: `st.navigation` over the thin pages in ``app_pages/``.

Started by `hrm-doctor dashboard [ROOT]`, which runs
``streamlit run dashboards/streamlit_app.py -- --root ROOT``; each page also runs alone.
"""

from __future__ import annotations

import streamlit as st

from dashboards import ui
from hrm_doctor import __version__

ui.page_config("Runs")

PAGES = {
    "runs": st.Page("app_pages/runs.py", title="Runs", icon=":material/table_rows:", default=True),
    "compare": st.Page(
        "app_pages/compare.py",
        title="Compare",
        icon=":material/compare_arrows:",
        url_path="compare",
    ),
    "study": st.Page("app_pages/study.py", title="Study", icon=":material/tune:", url_path="study"),
    "run": st.Page("app_pages/run.py", title="Run", icon=":material/monitoring:", url_path="run"),
    "act": st.Page("app_pages/act.py", title="ACT", icon=":material/timer:", url_path="act"),
    "embeddings": st.Page(
        "app_pages/embeddings.py",
        title="Embeddings",
        icon=":material/grid_on:",
        url_path="embeddings",
    ),
    "diagnosis": st.Page(
        "app_pages/diagnosis.py",
        title="Diagnosis",
        icon=":material/medical_services:",
        url_path="diagnosis",
    ),
}
st.session_state[ui.PAGES_KEY] = PAGES

page = st.navigation(
    {
        "All runs": [PAGES["runs"], PAGES["compare"], PAGES["study"]],
        "One run": [PAGES["run"], PAGES["act"], PAGES["embeddings"], PAGES["diagnosis"]],
    }
)
page.run()
st.sidebar.divider()
st.sidebar.caption(f":material/monitor_heart: hrm-doctor {__version__}")
