"""The dashboard's Study page, run alone through AppTest on a hand-built study."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from hrm_doctor.tune.storage import open_storage, resolve_storage

from .test_report import _study

PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "app_pages" / "study.py"


def _texts(at) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "code")
    return "\n".join(str(e.value) for k in kinds for e in getattr(at, k))


def test_study_page_shows_best_healthy_and_pruned_trials(tmp_path, monkeypatch):
    (tmp_path / "tune-s").mkdir()
    _study(open_storage(resolve_storage(None, tmp_path / "tune-s"), heartbeat=False))
    monkeypatch.setenv("HRM_DOCTOR_ROOT", str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Best healthy trials" in text and "Pruned trials" in text
    assert "hrm-train experiment=smoke lr=0.003" in text
    pruned = at.dataframe[1].value
    assert list(pruned["pruned by"]) == ["nonfinite-value@37"]


def test_study_page_without_a_study_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HRM_DOCTOR_ROOT", str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert "No study under" in _texts(at)
