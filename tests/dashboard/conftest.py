"""Fixture runs for the dashboard: a healthy one, an exploding one, one nobody diagnosed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dashboards import sample_runs

APP_DIR = Path(__file__).resolve().parents[2] / "dashboards"
STEPS = 400


@pytest.fixture(scope="session")
def dash_root(tmp_path_factory) -> Path:
    """healthy (diagnosed, no findings), explosion (2 ranks, findings and patches), undiagnosed."""
    root = tmp_path_factory.mktemp("dash_root")
    sample_runs.write_run(root / "healthy", STEPS, "healthy", seed=1)
    sample_runs.write_findings(root / "healthy", [])
    config = {**sample_runs.CONFIG, "lr": 3e-4}
    sample_runs.write_run(
        root / "explosion", STEPS, "explosion", world_size=2, seed=2, config=config
    )
    found = sample_runs.explosion_findings(STEPS)
    sample_runs.write_findings(root / "explosion", found)
    sample_runs.write_patches(root / "explosion", sample_runs.explosion_patches(found))
    sample_runs.write_run(root / "sweep" / "undiagnosed", 50, "healthy", seed=3)
    return root


@pytest.fixture
def app_env(dash_root, monkeypatch):
    """Point the dashboard at the fixture root."""
    monkeypatch.setenv("HRM_DOCTOR_ROOT", str(dash_root))
    monkeypatch.delenv("HRM_DOCTOR_ALLOW_APPLY", raising=False)
    _clear_caches()
    yield dash_root
    _clear_caches()


def _clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def open_page(app_env):
    """Run one page alone, as a user opening it (optionally with ``?run=NAME``)."""
    from streamlit.testing.v1 import AppTest

    def open_(name: str, run: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP_DIR / "app_pages" / f"{name}.py"), default_timeout=30)
        if run is not None:
            at.query_params["run"] = run
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest runs page scripts as `__main__` and leaves one in sys.modules; a later test that
    spawns processes (torch.multiprocessing) would then re-run that page in its children."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
