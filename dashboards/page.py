"""The skeleton every per-run page shares: pick the run, then a live fragment that reads it,
shows its header, and hands the page body what it needs (one piece, not one copy per page)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboards import data, ui
from dashboards.findings import Diagnosis
from dashboards.live import LiveRun
from dashboards.panels import PanelContext


@dataclass(frozen=True)
class RunView:
    """One render of a run page: the run, its diagnosis, and the chosen step range."""

    rel: str
    path: Path
    run: LiveRun
    diagnosis: Diagnosis
    bounds: tuple[int, int] | None  # None: no step logged yet
    lo: int = 0
    hi: int = 0

    def panels(self) -> PanelContext:
        return PanelContext(str(self.path), self.run, self.run.version, self.lo, self.hi,
                            self.diagnosis.findings)  # fmt: skip


def run_page(
    title: str,
    body: Callable[[RunView], None],
    *,
    header: str | None = None,
    no_steps: str | None = "No steps logged yet.",
    step_range: bool = True,
) -> None:
    """Render a page about one run: `body(view)` runs inside a live fragment. `header` is the
    page name in the run's title (default: `title`); with `no_steps=None` the body is called
    before the first step too (its `bounds` is then None); `step_range` shows the step slider
    (without it the view spans the whole run)."""
    ui.page_config(title)
    picked = ui.pick_run()
    if picked is None:
        st.stop()
    rel, path = picked

    @st.fragment(run_every=ui.live_interval())
    def live_body() -> None:
        lr = data.try_live_run(path)
        if lr is None:
            st.error(f"{rel}: not a readable run directory")
            return
        diagnosis = data.diagnosis(path, lr)
        ui.run_header(rel, lr, diagnosis, page=title if header is None else header)
        bounds = lr.step_bounds()
        if bounds is None:
            if no_steps is not None:
                st.info(no_steps)
                return
            body(RunView(rel, path, lr, diagnosis, None))
            return
        lo, hi = ui.step_range(bounds) if step_range else bounds
        body(RunView(rel, path, lr, diagnosis, bounds, lo, hi))

    live_body()
