"""The dashboard's data layer without a browser: incremental reads, downsampling, findings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dashboards import charts, control, findings, transforms
from dashboards.live import LiveRun, Series
from hrm_doctor import RunWriter


def _log(path, steps, *, session_from=None, value=1.0, extra=None):
    with RunWriter(path, config={"lr": 1e-4}, resume_from_step=session_from) as w:
        for i in steps:
            w.log({"train/lm_loss": value, "grad/norm": float(i), **(extra or {}).get(i, {})}, i)


def test_live_run_reads_only_new_rows_and_follows_a_rollback(tmp_path):
    run = tmp_path / "run"
    _log(run, range(50))
    lr = LiveRun(run)
    v1 = lr.refresh()
    assert len(lr.frame()) == 50 and lr.step_bounds() == (0, 49)
    assert lr.refresh() == v1  # nothing new: same version, nothing re-read
    _log(run, range(30, 80), session_from=30, value=2.0)  # a resume from step 30
    v2 = lr.refresh()
    assert v2 > v1
    f = lr.frame()
    assert list(f["step"]) == list(range(80))  # one timeline, each step once
    assert (f.loc[f["step"] < 30, "train/lm_loss"] == 1.0).all()
    assert (f.loc[f["step"] >= 30, "train/lm_loss"] == 2.0).all()


def test_live_run_marks_nonfinite_values_instead_of_dropping_them(tmp_path):
    run = tmp_path / "run"
    extra = {5: {"train/lm_loss": math.nan}, 7: {"train/lm_loss": math.inf}}
    _log(run, range(10), extra=extra)
    lr = LiveRun(run)
    lr.refresh()
    (s,) = lr.series("train/lm_loss")
    assert list(s.bad_x) == [5, 7] and list(s.bad_kind) == ["NaN", "+inf"]
    assert 5 not in s.x and 7 not in s.x and len(s.x) == 8
    fig = charts.line_figure([s], "loss")
    (marks,) = [t for t in fig["series"] if t["name"].startswith("non-finite")]
    points = fig["dataset"][marks["datasetIndex"]]["source"]
    assert list(points["step"]) == [5, 7] and list(points["kind"]) == ["NaN", "+inf"]


def test_live_run_means_over_ranks_or_splits_them(tmp_path):
    run = tmp_path / "run"
    for rank in (0, 1):
        with RunWriter(run, config={}, rank=rank, world_size=2) as w:
            for i in range(10):
                w.log({"sys/step_time_s": 0.1 * (rank + 1)}, step=i)
    lr = LiveRun(run)
    lr.refresh()
    (mean,) = lr.series("sys/step_time_s")
    assert np.allclose(mean.y, 0.15)
    per_rank = lr.series("sys/step_time_s", per_rank=True)
    assert [s.label for s in per_rank] == ["rank 0", "rank 1"]


def test_downsampling_keeps_at_most_4000_points_and_the_spike():
    x = np.arange(100_000, dtype=np.int64)
    y = np.sin(x / 500.0)
    y[61_234] = 50.0  # a one-step spike
    s = transforms.downsample_series(Series("m", x, y, np.array([], np.int64), np.array([])))
    assert len(s.x) <= transforms.MAX_POINTS
    assert 61_234 in s.x and s.y.max() == 50.0
    fig = charts.line_figure([s], "m")
    assert all(len(d["source"]) <= transforms.MAX_POINTS for d in fig["dataset"])


def test_binned_max_and_histograms():
    edges = transforms.step_bins(0, 99, n_bins=10)
    _, z = transforms.binned_max(np.arange(100), [np.where(np.arange(100) == 42, 9.0, 1.0)], edges)
    assert z[0, 4] == 9.0 and z[0, 0] == 1.0
    frac = transforms.histogram_over_steps(
        np.array([0, 50]), [np.array([1, 1, 2]), np.array([3])], edges, np.arange(1, 4)
    )
    assert np.allclose(frac[:, 0], [2 / 3, 1 / 3, 0]) and np.allclose(frac[:, 5], [0, 0, 1])
    assert np.isnan(frac[:, 1]).all()


def test_findings_read_status_and_torn_last_line(tmp_path):
    assert findings.daemon_findings(tmp_path) is None
    fs = [
        {"id": "a@1", "severity": "warning", "first_step": 1, "message": "w"},
        {"id": "b@5", "severity": "critical", "first_step": 5, "message": "c"},
    ]
    path = tmp_path / findings.FINDINGS_FILE
    path.write_text("".join(json.dumps(f) + "\n" for f in fs) + '{"id": "torn')
    d = findings.diagnose(tmp_path)
    assert d.source == "daemon" and d.status == "critical" and len(d.findings) == 2
    assert d.newest["id"] == "b@5"
    path.write_text("")
    assert findings.diagnose(tmp_path).status == "healthy"


def test_a_directory_that_is_no_run_is_not_diagnosed_and_says_why(tmp_path):
    d = findings.diagnose(tmp_path / "nothing-here")
    assert d.source == "error" and d.status is None
    assert "cannot diagnose" in d.note and "nothing-here" in d.note


def test_undiagnosed_run_goes_through_the_library_api(tmp_path, monkeypatch):
    """No CLI, no temporary file: `hrm_doctor.diagnose` itself (the library contract)."""
    import hrm_doctor.diagnosis
    from hrm_doctor.engine.finding import Finding

    calls = []

    def fake_diagnose(run, rules=None, **kw):
        calls.append((run, rules))
        f = Finding("x@3", "x", "core", "loss_spike", "warning", 3, 3, None, None, "m")
        return hrm_doctor.diagnosis.Report(str(run), "warning", 10, [f], [], [])

    monkeypatch.setattr(hrm_doctor.diagnosis, "diagnose", fake_diagnose)
    d = findings.diagnose(tmp_path)
    assert d.source == "explain" and d.status == "warning" and d.findings[0]["id"] == "x@3"
    assert calls == [(tmp_path, None)]


def test_request_apply_goes_through_the_guarded_patch_path(tmp_path):
    from hrm_doctor.control import CONTROL_DIR, REQUESTS_DIR
    from hrm_doctor.watch.patches import read_patches

    finding = {
        "id": "f@1",
        "rule": "f",
        "category": "explosion",
        "severity": "critical",
        "first_step": 1,
        "last_step": 1,
        "rank": None,
        "metric": None,
        "message": "m",
        "suggestion": {"overrides": ["lr=1e-05"], "apply": "hot"},
    }
    rec = control.request_apply(tmp_path, finding)
    assert rec["state"] == "requested" and rec["overrides"] == ["lr=1e-05"]
    assert (tmp_path / CONTROL_DIR / REQUESTS_DIR / "p-f@1.json").exists()
    assert [r["state"] for r in read_patches(tmp_path)] == ["proposed", "requested"]
    with pytest.raises(ValueError, match="already has a patch"):
        control.request_apply(tmp_path, finding)
    with pytest.raises(ValueError, match="no overrides"):
        control.request_apply(tmp_path, {"id": "g@2", "suggestion": {}})


def test_the_real_engine_diagnoses_a_run_nobody_watched(dash_root):
    """A run nobody watched: one real pass of the rule engine."""
    d = findings.diagnose_once(dash_root / "explosion")
    assert d.source == "explain", d.note
    assert d.status in findings.STATUSES
    assert all({"id", "severity", "message"} <= set(f) for f in d.findings)
