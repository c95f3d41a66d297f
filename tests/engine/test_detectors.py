"""Detectors against slow, obviously-correct references, and bit-identical in any chunking."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_doctor.engine.detectors import REGISTRY
from hrm_doctor.engine.detectors.base import rolling_median


def make(kind, **params):
    cls = REGISTRY[kind]
    return cls(cls.Params(**params), lambda v: v)


def series(n, seed=0, level=1.0, noise=0.1):
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64), level * np.exp(rng.normal(0, noise, n))


def test_rolling_median_is_the_median_of_the_trailing_window():
    _, x = series(300)
    for w in (1, 5, 51):
        got = rolling_median(x, w)
        for i in range(w - 1, len(x)):
            assert got[i] == np.median(x[i - w + 1 : i + 1])


def test_spike_ratio_is_the_value_over_the_median_of_the_previous_window():
    s, x = series(400)
    x[250] *= 8
    det = make("spike", window=51, factor=5)
    sig = det.update(s, x)
    for i in range(51, len(x)):
        assert sig.stat[i] == pytest.approx(x[i] / np.median(x[i - 51 : i]), rel=1e-9)
    assert np.nonzero(sig.cond)[0].tolist() == [250]


def test_growth_compares_medians_of_thirds():
    s = np.arange(600, dtype=np.int64)
    x = np.where(s < 300, 1.0, np.exp((s - 300) / 40.0))
    det = make("growth", window=90, min_factor=2, doubling_steps=100)
    sig = det.update(s, x)
    k = 31  # window // 3, odd
    i = 450
    g3, g1 = (
        np.median(np.log(x[i - k + 1 : i + 1])),
        np.median(np.log(x[i - 3 * k + 1 : i - 2 * k + 1])),
    )
    assert sig.stat[i] == pytest.approx(math.exp(g3 - g1))
    first = int(np.argmax(sig.cond))
    assert 300 < first < 300 + 90 and not sig.cond[:300].any()


def test_decay_is_relative_to_the_running_peak_of_the_smoothed_level():
    s = np.arange(500, dtype=np.int64)
    x = np.concatenate([np.full(100, 4.0), np.full(200, 2.0), np.full(200, 0.05)])
    det = make("decay", window=11, below_frac=0.02)
    sig = det.update(s, x)
    assert np.nanmax(sig.ref) == 4.0
    assert int(np.argmax(sig.cond)) == 305  # the 11-step median reaches 0.05 at 300 + 5


def test_threshold_arming_ignores_the_untrained_start():
    s = np.arange(400, dtype=np.int64)
    x = np.concatenate([np.full(100, 1.0), np.full(100, 0.3), np.full(200, 1.0)])
    sig = make("fraction", above=0.95, arm_below=0.7, window=11).update(s, x)
    assert not sig.cond[:200].any() and sig.cond[205:].all()


def test_nonfinite_fires_on_nan_and_inf_only():
    s = np.arange(6, dtype=np.int64)
    x = np.array([1.0, math.nan, 2.0, math.inf, -math.inf, 0.0])
    assert make("nonfinite").update(s, x).cond.tolist() == [False, True, False, True, True, False]


def test_rank_divergence_matches_a_per_step_loop():
    rng = np.random.default_rng(1)
    m = np.exp(rng.normal(0, 0.05, (300, 4)))
    m[150:, 2] *= 2.0
    det = REGISTRY["rank_divergence"](
        REGISTRY["rank_divergence"].Params(ratio=1.3, window=11), lambda v: v
    )
    sig = det.update_ranks(np.arange(300, dtype=np.int64), m)
    for i in range(20, 300, 37):
        sm = [np.median(m[i - 10 : i + 1, j]) for j in range(4)]
        assert sig.stat[i] == pytest.approx(max(sm) / np.median(sm))
    assert not sig.cond[:150].any() and sig.cond[170:].all()


def test_plateau_fires_after_an_abrupt_stop_not_on_a_smooth_decay():
    s = np.arange(5000, dtype=np.int64)
    rng = np.random.default_rng(2)
    smooth = 2.4 * np.exp(-s / 3000) * np.exp(rng.normal(0, 0.02, 5000))
    stop = smooth.copy()
    stop[2500:] = 2.4 * math.exp(-2500 / 3000) * np.exp(rng.normal(0, 0.02, 2500))
    params = dict(window=601, prior_window=1203, eps=0.005, prior_min=0.1)
    assert not make("plateau", **params).update(s, smooth).cond.any()
    fired = np.nonzero(make("plateau", **params).update(s, stop).cond)[0]
    assert len(fired) and 2500 < fired[0] < 3200


SERIES_DETECTORS = [
    ("spike", dict(window=21, factor=2, z=3)),
    ("growth", dict(window=30, min_factor=1.5, doubling_steps=50)),
    ("decay", dict(window=7, below_frac=0.5)),
    ("no_progress", dict(window=7, above_frac=0.9, early_samples=9)),
    ("rebound", dict(window=7, above_frac=2.0, skip_samples=3)),
    ("plateau", dict(window=30, prior_window=60, eps=0.05, prior_min=0.01)),
    ("threshold", dict(above=1.5, window=5, arm_below=0.8)),
    ("nonfinite", {}),
]


@pytest.mark.parametrize(("kind", "params"), SERIES_DETECTORS, ids=[k for k, _ in SERIES_DETECTORS])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_chunking_gives_bit_identical_signals(kind, params, data):
    n = data.draw(st.integers(20, 220))
    seed = data.draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    x = np.exp(np.cumsum(rng.normal(0, 0.08, n))) * (1 + (rng.random(n) < 0.03) * 5)
    if kind == "nonfinite":
        x[rng.random(n) < 0.05] = np.nan
    s = np.cumsum(rng.integers(1, 3, n)).astype(np.int64)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=8))))
    whole = make(kind, **params).update(s, x)
    det = make(kind, **params)
    parts = [det.update(s[a:b], x[a:b]) for a, b in zip([0, *cuts], [*cuts, n])]
    cond = np.concatenate([p.cond for p in parts])
    stat = np.concatenate([p.stat for p in parts])
    assert np.array_equal(cond, whole.cond)
    assert np.array_equal(stat, whole.stat, equal_nan=True)
