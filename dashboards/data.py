"""The dashboard's data: every read goes through hrm_doctor's `RunReader`, under bounded caches.

- `live_run`: one `LiveRun` per run, shared by every session (``st.cache_resource``: a frame of
  100,000 steps must not be pickled and copied on each hit, as ``st.cache_data`` would), and
  refreshed with only the rows appended since the last refresh.
- Everything derived from it (downsampled series, heatmap matrices, diagnoses) sits in a bounded
  ``st.cache_data`` keyed by the run's data version, so a refresh that brought nothing new costs
  one lookup and a new step costs the work on that one series.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboards import findings as fnd
from dashboards import transforms as tf
from dashboards.live import LiveRun, Series
from dashboards.settings import Settings, load_settings
from hrm_doctor.errors import UserError

# A run nobody watches is diagnosed by `explain` at most this often while it is being written.
EXPLAIN_EVERY_S = 60.0


def settings() -> Settings:
    return load_settings()


@st.cache_data(ttl=5, max_entries=8, show_spinner=False)
def run_names(root: str) -> list[str]:
    """Runs under `root`, as paths relative to it ("." when the root is itself a run)."""
    from hrm_doctor.rundir import find_runs

    base = Path(root)
    if not base.is_dir():
        return []
    return [p.relative_to(base).as_posix() or "." for p in find_runs(base)]


def run_path(rel: str) -> Path | None:
    """The run directory for a name from `run_names`; None for anything outside the root."""
    root = settings().root.resolve()
    p = (root / rel).resolve()
    if p != root and root not in p.parents:
        return None
    return p


@st.cache_resource(max_entries=32, show_spinner=False)
def _live_run(path: str) -> LiveRun:
    return LiveRun(path)


def live_run(path: str | Path) -> LiveRun:
    """The run's shared in-memory timeline, brought up to date (reads only new bytes)."""
    lr = _live_run(str(path))
    lr.refresh()
    return lr


def try_live_run(path: str | Path) -> LiveRun | None:
    try:
        return live_run(path)
    except UserError:
        return None


# ---- series and matrices for charts --------------------------------------------------------


@st.cache_data(max_entries=1024, show_spinner=False)
def chart_series(
    path: str, version: int, metric: str, lo: int | None, hi: int | None, per_rank: bool
) -> list[Series]:
    """`metric` over [lo, hi], at most `transforms.MAX_POINTS` points per series."""
    del version  # the cache key: the run's data version
    return [
        tf.downsample_series(s)
        for s in _live_run(path).series(metric, lo=lo, hi=hi, per_rank=per_rank)
    ]


@st.cache_data(max_entries=128, show_spinner=False)
def block_heatmap(
    path: str, version: int, metrics: tuple[str, ...], lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """log10 of each metric's maximum per step bin: (bin centres, matrix [metrics, bins])."""
    del version
    lr = _live_run(path)
    edges = tf.step_bins(lo, hi)
    xs, ys = [], []
    for m in metrics:
        (s,) = lr.series(m, lo=lo, hi=hi) or [None]
        xs.append(s.x if s is not None else np.empty(0, np.int64))
        ys.append(s.y if s is not None else np.empty(0))
    rows = []
    centres = (edges[:-1] + edges[1:]) / 2
    for x, y in zip(xs, ys):
        _, z = tf.binned_max(x, [y], edges)
        rows.append(z[0])
    z = np.vstack(rows) if rows else np.empty((0, len(centres)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return centres, np.where(z > 0, np.log10(z), np.nan)


def _tensor_window(path: str, name: str, lo: int, hi: int) -> pd.DataFrame:
    df = _live_run(path).tensors(name)
    if not len(df):
        return df
    return df[(df["step"] >= lo) & (df["step"] <= hi)]


@st.cache_data(max_entries=64, show_spinner=False)
def halt_histogram(
    path: str, version: int, lo: int, hi: int, halt_max: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Fraction of sequences halting at each ACT step (rows 1..halt_max) per step bin."""
    del version
    df = _tensor_window(path, "act/halt_steps", lo, hi)
    if not len(df):
        return None
    top = max(halt_max, int(max(float(np.nanmax(a)) if len(a) else 0 for a in df["values"])))
    values = np.arange(1, top + 1)
    edges = tf.step_bins(lo, hi, n_bins=min(tf.MAX_BINS, max(1, df["step"].nunique())))
    frac = tf.histogram_over_steps(df["step"].to_numpy(), list(df["values"]), edges, values)
    return (edges[:-1] + edges[1:]) / 2, values, frac


@st.cache_data(max_entries=64, show_spinner=False)
def tensor_bands(
    path: str, version: int, name: str, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """p5/p25/p50/p75/p95 of a 1-D tensor's samples per step bin."""
    del version
    df = _tensor_window(path, name, lo, hi)
    if not len(df):
        return None
    edges = tf.step_bins(lo, hi, n_bins=min(tf.MAX_BINS, max(1, df["step"].nunique())))
    return tf.quantiles_over_steps(df["step"].to_numpy(), list(df["values"]), edges)


@st.cache_data(max_entries=64, show_spinner=False)
def latest_tensor(path: str, version: int, name: str) -> tuple[int, np.ndarray] | None:
    """The newest step's samples of a tensor, pooled over ranks."""
    del version
    df = _live_run(path).tensors(name)
    if not len(df):
        return None
    step = int(df["step"].max())
    arrays = list(df.loc[df["step"] == step, "values"])
    return step, np.concatenate([np.asarray(a, np.float64) for a in arrays])


# ---- diagnosis -----------------------------------------------------------------------------


def _file_stamp(p: Path) -> tuple[int, int] | None:
    try:
        st_ = p.stat()
    except OSError:
        return None
    return st_.st_mtime_ns, st_.st_size


@st.cache_data(max_entries=256, show_spinner="Diagnosing (the rule engine's first pass)…")
def _diagnosis(path: str, stamp: tuple, engine: bool) -> fnd.Diagnosis:
    del stamp
    return fnd.diagnose(path, engine=engine)


def diagnosis(path: str | Path, lr: LiveRun | None = None, *, engine: bool = True) -> fnd.Diagnosis:
    """The run's findings: the daemon's file when present, else (with `engine`) one pass of
    the rule engine, cached."""
    p = Path(path)
    findings_stamp = _file_stamp(p / fnd.FINDINGS_FILE)
    stamp: tuple = (findings_stamp, _file_stamp(p / fnd.PATCHES_FILE))
    if findings_stamp is None and engine:
        # No daemon: `explain` again only when the run changed, and at most once a minute
        # while it is still being written.
        running = lr is not None and lr.status == "running"
        version = lr.version if lr is not None else 0
        stamp += (int(time.time() // EXPLAIN_EVERY_S) if running else version,)
    return _diagnosis(str(p), stamp, engine)


# ---- the runs table ------------------------------------------------------------------------

SPARK_POINTS = 60


def sparkline(lr: LiveRun, metric: str, *, log10: bool = False) -> list[float]:
    """A metric's whole history in `SPARK_POINTS` points (MinMaxLTTB keeps its spikes)."""
    series = chart_series(str(lr.path), lr.version, metric, None, None, False)
    if not series or not len(series[0].x):
        return []
    s = series[0]
    x, y = tf.downsample(s.x, s.y, SPARK_POINTS)
    if log10:
        y = np.log10(np.where(y > 0, y, np.nan))
    return [float(v) for v in y if np.isfinite(v)]


# Runs without a daemon's summary.json are read whole for their row only while they are this
# few: a root of a thousand runs is listed from the summaries (hrm_doctor.watch.summary).
READ_UNWATCHED_MAX = 20


def runs_overview(root: Path) -> pd.DataFrame:
    """One row per run under `root`: status, writer state, last step, speed, sparklines, the
    newest finding. From each run's summary.json (kept by `hrm-doctor watch`): no telemetry
    is read, so a thousand runs list in a second; runs nobody watches are read whole while
    they are few, and listed as "not watched" beyond that."""
    from hrm_doctor.rundir import read_summary

    now = time.time()
    names = run_names(str(root))
    summaries = {rel: read_summary(root / rel) for rel in names}
    unwatched = [rel for rel, s in summaries.items() if s is None]
    read_whole = len(unwatched) <= READ_UNWATCHED_MAX
    rows = []
    for rel in names:
        s = summaries[rel]
        if s is not None:
            rows.append(_summary_row(rel, s, now))
        elif read_whole:
            rows.append(_live_row(rel, root / rel, now))
        else:
            rows.append({"run": rel, "status": "not watched", "writer": "-", "findings": None})
    return pd.DataFrame(rows)


def _summary_row(rel: str, s: dict, now: float) -> dict:
    def points(name: str, log10: bool = False) -> list[float]:
        v = np.array([p[1] for p in (s.get("sparklines") or {}).get(name) or []], np.float64)
        if log10:
            v = np.log10(np.where(v > 0, v, np.nan))
        return v[np.isfinite(v)].tolist()

    newest = s.get("newest_finding") or {}
    last = s.get("last_write_time")
    return {
        "run": rel,
        "status": s.get("health") or "not diagnosed",
        "loss": points("train/lm_loss"),
        "grad norm": points("grad/norm", log10=True),
        "writer": s.get("status") or "-",
        "last step": s.get("last_step"),
        "steps/s": s.get("steps_per_s"),
        "findings": s.get("findings"),
        "newest finding": newest.get("message") or newest.get("id") or "",
        "last write (s ago)": round(now - last, 1) if last else None,
    }


def _live_row(rel: str, path: Path, now: float) -> dict:
    lr = try_live_run(path)
    if lr is None:
        return {"run": rel, "status": "unreadable", "writer": "-"}
    d = diagnosis(path, lr, engine=False)
    bounds = lr.step_bounds()
    newest = d.newest
    last = lr.last_write_time
    return {
        "run": rel,
        "status": d.status or "not diagnosed",
        "loss": sparkline(lr, "train/lm_loss"),
        "grad norm": sparkline(lr, "grad/norm", log10=True),
        "writer": lr.status,
        "last step": bounds[1] if bounds else None,
        "steps/s": lr.steps_per_s(),
        "findings": len(d.findings),
        "newest finding": newest.get("message", newest.get("id")) if newest else "",
        "last write (s ago)": round(now - last, 1) if last else None,
    }
