"""Widgets every page shares: the run picker, the live toggle, step range, badges, page links.

Each page calls these itself, so that it runs alone (an AppTest, `streamlit run page.py`) as well
as under the app's `st.navigation`. Choices that must survive a page switch are copied to a
plain session key, because Streamlit drops a widget's state on a page that does not show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from dashboards import data
from hrm_doctor.runs import human_age

RUN_KEY = "run"  # the URL query parameter: ?run=sweep/a
PICKER_KEY = "run_picker"
PAGES_KEY = "_hrm_pages"  # set by streamlit_app.py: page name -> st.Page

STATUS_BADGES: dict[str, tuple[str, str]] = {
    "critical": ("red", ":material/error:"),
    "warning": ("orange", ":material/warning:"),
    "info": ("blue", ":material/info:"),
    "healthy": ("green", ":material/check_circle:"),
    "not diagnosed": ("gray", ":material/help:"),
}
WRITER_BADGES: dict[str, tuple[str, str]] = {
    "running": ("blue", ":material/play_circle:"),
    "finished": ("gray", ":material/flag:"),
    "crashed": ("red", ":material/dangerous:"),
    "failed": ("red", ":material/dangerous:"),
    "empty": ("gray", ":material/hourglass_empty:"),
}
APPLY_TEXT = {
    "hot": "hot: the running trainer applies it at its next step",
    "restart": "restart: roll back to the last checkpoint before the onset, restart with it",
}


def _chosen(key: str, default: Any) -> Any:
    """The value a sidebar widget should show on this page: the user's last choice, kept in a
    plain session key, because Streamlit forgets a widget's state on a page switch."""
    return st.session_state.get(f"_chosen_{key}", default)


def _keep(key: str) -> None:
    """on_change: remember a sidebar widget's new value across pages."""
    st.session_state[f"_chosen_{key}"] = st.session_state.get(key)


def sidebar_root() -> Path:
    root = data.settings().root
    st.sidebar.caption(f"Runs under `{root.name or root}`", help=str(root))
    return root


def pick_run() -> tuple[str, Path] | None:
    """The run this page shows, chosen in the sidebar and kept in the URL as ``?run=NAME``.

    A valid ``?run=`` in the URL wins (a link, the back button); else the run chosen on the
    previous page; else the first. The URL is rewritten to match, so it can be shared.
    """
    root = data.settings().root
    names = data.run_names(str(root))
    if not names:
        st.info(f"No runs under `{root}` yet. Runs appear here as soon as a trainer writes one.")
        return None
    wanted = st.query_params.get(RUN_KEY)
    if wanted not in names:
        wanted = _chosen(RUN_KEY, None)
    if wanted not in names:
        wanted = names[0]
    st.session_state[PICKER_KEY] = wanted
    rel = st.sidebar.selectbox(
        "Run",
        names,
        key=PICKER_KEY,
        on_change=_on_pick,
        help="Every run under the dashboard's root directory",
    )
    st.session_state[f"_chosen_{RUN_KEY}"] = rel
    if st.query_params.get(RUN_KEY) != rel:
        st.query_params[RUN_KEY] = rel
    path = data.run_path(rel) if rel is not None else None
    if path is None:
        st.error(f"{rel}: not a run under {root}")
        return None
    return rel, path


def _on_pick() -> None:
    rel = st.session_state.get(PICKER_KEY)
    st.session_state[f"_chosen_{RUN_KEY}"] = rel
    st.query_params[RUN_KEY] = rel


def live_interval() -> float | None:
    """Sidebar toggle: the refresh interval for live panels, or None while paused."""
    st.session_state["live"] = _chosen("live", True)
    on = st.sidebar.toggle(
        "Live updates",
        key="live",
        on_change=_keep,
        args=("live",),
        help=f"Re-read new telemetry every {data.settings().refresh_s:g} s; pause to inspect.",
    )
    return data.settings().refresh_s if on else None


def step_range(bounds: tuple[int, int], key: str = "steps") -> tuple[int, int]:
    """A step-range slider over the run that follows new steps while its right end is at the end."""
    lo, hi = bounds
    if hi <= lo:
        return lo, hi
    end_key = f"_{key}_end"
    cur = st.session_state.get(key)
    if cur is None:
        st.session_state[key] = (lo, hi)
    else:
        a, b = cur
        if b >= st.session_state.get(end_key, hi):  # pinned to the newest step: follow it
            b = hi
        st.session_state[key] = (max(lo, min(a, hi)), max(lo, min(b, hi)))
    st.session_state[end_key] = hi
    value = st.slider(
        "Step range",
        min_value=lo,
        max_value=hi,
        key=key,
        help="Charts show (and downsample) only these steps: narrow it to see every point.",
    )
    return int(value[0]), int(value[1])


def status_badge(status: str | None, *, prefix: str = "") -> None:
    label = status or "not diagnosed"
    color, icon = STATUS_BADGES.get(label, ("gray", ":material/help:"))
    st.badge(f"{prefix}{label}", color=color, icon=icon)  # type: ignore[arg-type]


def writer_badge(status: str) -> None:
    color, icon = WRITER_BADGES.get(status, ("gray", ":material/help:"))
    st.badge(status, color=color, icon=icon)  # type: ignore[arg-type]


def page_link(name: str, label: str, rel: str, icon: str | None = None) -> None:
    """A link to another page for run `rel`; a plain URL when the page runs alone."""
    pages = st.session_state.get(PAGES_KEY) or {}
    page = pages.get(name)
    if page is not None:
        st.page_link(page, label=label, icon=icon, query_params={RUN_KEY: rel})
    else:
        st.markdown(f"[{label}](./{name}?{RUN_KEY}={rel})")


CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.2rem; padding-bottom: 3rem; }
[data-testid="stMetricValue"] { font-size: 1.9rem; }
</style>"""


def page_config(title: str) -> None:
    """Wide layout and a tab title; also when the page runs alone, without the app's frame."""
    st.set_page_config(
        page_title=f"{title} · hrm-doctor", page_icon=":material/monitor_heart:", layout="wide"
    )
    st.html(CSS)


def chart_title(
    title: str, *, help: str | None = None, log_key: str | None = None, log_default: bool = False
) -> bool:
    """A chart's header row: its title, and a log-scale toggle when `log_key` is given."""
    with st.container(
        horizontal=True, horizontal_alignment="distribute", vertical_alignment="center"
    ):
        st.markdown(f"**{title}**", help=help)
        if log_key is None:
            return False
        return st.toggle("log y", value=log_default, key=log_key)


def run_header(rel: str, lr: Any, diagnosis: Any, *, page: str) -> None:
    """Title, diagnosis and writer badges, progress figures, and the newest finding."""

    st.title(f"{page} · {rel}" if page else rel)
    with st.container(horizontal=True, vertical_alignment="center"):
        status_badge(diagnosis.status)
        writer_badge(lr.status)
        bounds = lr.step_bounds()
        rate = lr.steps_per_s()
        last = lr.last_write_time
        bits = [
            f"last step **{bounds[1]:,}**" if bounds else "no steps yet",
            f"**{rate:.2f}** steps/s" if rate else None,
            f"{len(lr.ranks())} rank(s)",
            f"last write {human_age(last)}",
        ]
        st.markdown(" · ".join(b for b in bits if b))
    newest = diagnosis.newest
    if newest is not None:
        sev = str(newest.get("severity", "info"))
        box = {"critical": st.error, "warning": st.warning}.get(sev, st.info)
        first = newest.get("first_step")
        box(
            f"**{sev}** since step {first}: {newest.get('message', newest.get('id'))}",
            icon=STATUS_BADGES.get(sev, ("", ":material/info:"))[1],
        )
    elif diagnosis.status is None:
        st.caption(diagnosis.note)
