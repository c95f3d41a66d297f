"""Pure array transforms behind the charts: downsampling that keeps spikes, step binning.

No chart sends more than `MAX_POINTS` points per series to the browser (DESIGN.md): lines are
reduced with MinMaxLTTB (tsdownsample), which keeps each bucket's extremes so that a one-step
spike survives; heatmaps bin steps into at most `MAX_BINS` columns, taking the bin's maximum
where a spike matters (gradient norms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dashboards.live import Series

MAX_POINTS = 4000
MAX_BINS = 300


def downsample(x: np.ndarray, y: np.ndarray, n_out: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """At most `n_out` points of (x, y), x increasing, y finite: MinMaxLTTB keeps the spikes."""
    if len(x) <= n_out:
        return x, y
    from tsdownsample import MinMaxLTTBDownsampler

    idx = MinMaxLTTBDownsampler().downsample(x, y, n_out=n_out)
    return x[idx], y[idx]


def downsample_series(s: Series, n_out: int = MAX_POINTS) -> Series:
    x, y = downsample(s.x, s.y, n_out)
    bad_x, bad_kind = s.bad_x, s.bad_kind
    if len(bad_x) > n_out:  # a run that went NaN for good: keep the first and an even stride
        keep = np.unique(np.linspace(0, len(bad_x) - 1, n_out).astype(np.int64))
        bad_x, bad_kind = bad_x[keep], bad_kind[keep]
    return Series(s.label, x, y, bad_x, bad_kind)


def step_bins(lo: int, hi: int, n_bins: int = MAX_BINS) -> np.ndarray:
    """Bin edges over [lo, hi] (integer steps), at most `n_bins` bins, at least one step wide."""
    span = max(hi - lo + 1, 1)
    n = max(1, min(n_bins, span))
    return np.linspace(lo, hi + 1, n + 1)


def binned_max(
    x: np.ndarray, ys: Sequence[np.ndarray], edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `ys` (each aligned with steps `x`), the max over each step bin (NaN if empty).

    Returns (bin centres, matrix [len(ys), n_bins]).
    """
    n = len(edges) - 1
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n - 1)
    out = np.full((len(ys), n), np.nan)
    for i, y in enumerate(ys):
        ok = np.isfinite(y)
        if ok.any():
            col = np.full(n, -np.inf)
            np.maximum.at(col, which[ok], y[ok])
            col[np.isneginf(col)] = np.nan
            out[i] = col
    centres = (edges[:-1] + edges[1:]) / 2
    return centres, out


def histogram_over_steps(
    steps: np.ndarray, arrays: Sequence[np.ndarray], edges: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Fraction of samples at each integer value (rows) per step bin (columns).

    `arrays[i]` are the samples logged at `steps[i]` (e.g. the ACT steps at which sequences
    halted); `values` are the integer values to count (1 .. halt_max_steps).
    """
    n = len(edges) - 1
    counts = np.zeros((len(values), n))
    if not len(steps):
        return counts
    which = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, n - 1)
    lo = int(values[0])
    for b, a in zip(which, arrays):
        a = np.asarray(a)
        a = a[np.isfinite(a)]
        idx = np.clip(np.round(a).astype(np.int64) - lo, 0, len(values) - 1)
        np.add.at(counts[:, b], idx, 1)
    total = counts.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, counts / np.maximum(total, 1), np.nan)
    return frac


def quantiles_over_steps(
    steps: np.ndarray,
    arrays: Sequence[np.ndarray],
    edges: np.ndarray,
    qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of the samples pooled per step bin: (bin centres [m], matrix [len(qs), m]).

    Bins with no samples are left out.
    """
    n = len(edges) - 1
    which = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, n - 1)
    pooled: dict[int, list[np.ndarray]] = {}
    for b, a in zip(which.tolist(), arrays):
        pooled.setdefault(b, []).append(np.asarray(a, dtype=np.float64))
    centres = (edges[:-1] + edges[1:]) / 2
    keys = sorted(pooled)
    out = np.full((len(qs), len(keys)), np.nan)
    for j, b in enumerate(keys):
        v = np.concatenate(pooled[b])
        v = v[np.isfinite(v)]
        if len(v):
            out[:, j] = np.quantile(v, qs)
    return centres[keys], out
