"""Detectors that judge a sample against the series' own recent history: spike, growth,
decay (and its relatives no_progress and rebound), plateau."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from hrm_doctor.engine.detectors.base import (
    Detector,
    Number,
    Params,
    Signal,
    StepNumber,
    json_number,
    odd,
    odd_window,
    rolling_median,
    shift,
)

_TINY = 1e-30
# Robust sigma from a median absolute deviation (normal data), and the efficiency of a median.
_MAD_SIGMA = 1.4826
_MEDIAN_SE = 1.2533


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, _TINY))


class SpikeParams(Params):
    one_of = ("factor", "z")
    window: int = Field(101, ge=5, le=20_001)
    factor: float | None = Field(None, gt=1)
    z: float | None = Field(None, gt=0)
    min_samples: int | None = Field(None, ge=1)
    after_step: StepNumber = 0
    log: bool = True
    min_level: Number = None


class Spike(Detector):
    """A sample far above its recent history: the ratio to the median of the previous `window`
    samples is at least `factor`, and/or its robust z-score (deviation over 1.4826 x the median
    absolute deviation, on log values by default) is at least `z`. Warm-up aware: silent until
    `min_samples` (default window/2) samples and before `after_step`.

    Defaults to start from: LLM Foundry's KillLossSpike (window 100, 2x the window's mean,
    patience 4); a robust z of 6 is far outside the 3.5 of Iglewicz and Hoaglin's modified z.
    """

    Params = SpikeParams
    stat_name = "ratio"
    summary = "a sample far above the median of the previous window"

    def setup(self) -> None:
        self.window = odd(self.p.window)
        self.min_samples = self.p.min_samples or self.p.window // 2
        self.lookback = 2 * self.window + 2

    def compute(self, s, v, n_old, aux) -> Signal:
        y = _log(v) if self.p.log else v
        base = shift(rolling_median(y, self.window), 1)
        dev = np.abs(y - base)
        dev[0] = 0.0
        scale = shift(rolling_median(dev, self.window), 1) * _MAD_SIGMA
        sl = slice(n_old, None)
        y, base, scale, steps = y[sl], base[sl], scale[sl], s[sl]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.p.log:
                ratio = np.exp(y - base)
                ref = np.exp(base)
            else:
                ratio = np.where(base > 0, v[sl] / base, np.nan)
                ref = base
            z = (y - base) / np.maximum(scale, 1e-3 if self.p.log else 1e-12)
        self.scratch["z"] = z
        n = len(steps)
        seen = np.arange(self._n_seen, self._n_seen + n)
        cond = (seen >= self.min_samples) & (steps >= self.after_step)
        if self.p.factor is not None:
            cond &= ratio >= self.p.factor
        if self.p.z is not None:
            cond &= z >= self.p.z
        if self.min_level is not None:
            cond &= ref >= self.min_level
        return Signal(steps, cond, ratio, v[sl], ref)

    def evidence(self, i: int) -> dict[str, Any]:
        ev = super().evidence(i)
        ev["z"] = json_number(self.scratch["z"][i])
        return ev

    def thresholds(self) -> dict[str, Any]:
        out: dict[str, Any] = {"window": self.window}
        if self.p.factor is not None:
            out["factor"] = self.p.factor
        if self.p.z is not None:
            out["z_min"] = self.p.z
        return out


class GrowthParams(Params):
    window: int = Field(301, ge=9, le=100_001)
    doubling_steps: Number = None
    min_factor: float = Field(2.0, gt=1)
    min_share: float = Field(0.2, ge=0, le=0.5)
    direction: Literal["up", "down"] = "up"
    min_level: Number = None
    max_level: Number = None
    after_step: StepNumber = 0
    abs: bool = False


class Growth(Detector):
    """Sustained exponential growth (or decay, `direction: down`). The window is cut in three;
    the medians of the log values of the thirds must rise steadily (Tukey's resistant line: a
    single spike cannot move a median; each half of the rise at least `min_share` of it, so a
    jump or a transient bump is not growth), the last third must be at least `min_factor`
    times the first, and the implied doubling time must be at most `doubling_steps` steps. The
    evidence adds the Theil-Sen slope of the log values over the window.

    Defaults to start from: OLMo 2 (arXiv 2501.00656) reads slowly growing gradient norms as the
    early sign of the instability that later spikes; Wortsman et al. (2023, arXiv 2309.14322)
    trace divergence to logits that grow without bound (attention and output logit growth).
    """

    Params = GrowthParams
    stat_name = "factor"
    summary = "sustained exponential growth (or decay) over a window"

    def setup(self) -> None:
        self.k = odd(max(3, self.p.window // 3))
        self.lookback = 3 * self.k

    def compute(self, s, v, n_old, aux) -> Signal:
        x = np.abs(v) if self.p.abs else v
        y = _log(x)
        k = self.k
        m = rolling_median(y, k)
        g2, g1 = shift(m, k), shift(m, 2 * k)
        s_back = shift(s.astype(np.float64), 2 * k)
        sl = slice(n_old, None)
        g3, g2, g1, steps, s_back = m[sl], g2[sl], g1[sl], s[sl], s_back[sl]
        up = self.p.direction == "up"
        d = (g3 - g1) if up else (g1 - g3)
        d12 = (g2 - g1) if up else (g1 - g2)
        # Sustained: each half of the window carries at least `min_share` of the change, so a
        # single jump (a spike rule's business) or a transient bump is not "growth".
        with np.errstate(divide="ignore", invalid="ignore"):
            share = d12 / d
        mono = (d > 0) & (share >= self.p.min_share) & (share <= 1 - self.p.min_share)
        span = np.maximum(steps - s_back, 1.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            factor = np.exp(d)
            doubling = np.where(d > 0, math.log(2) * span / d, np.inf)
        self.scratch["doubling"] = doubling
        n = len(steps)
        seen = np.arange(self._n_seen + 1, self._n_seen + n + 1)
        cond = mono & (factor >= self.p.min_factor) & (seen >= 3 * k) & (steps >= self.after_step)
        if self.doubling_steps is not None:
            cond &= doubling <= self.doubling_steps
        level = np.exp(g3)
        if self.min_level is not None:
            cond &= level >= self.min_level
        if self.max_level is not None:
            cond &= level <= self.max_level
        return Signal(steps, cond, factor, level, np.exp(g1))

    def evidence(self, i: int) -> dict[str, Any]:
        ev = super().evidence(i)
        key = "doubling_steps" if self.p.direction == "up" else "halving_steps"
        ev[key] = json_number(self.scratch["doubling"][i])
        all_s, all_v, n_old, _ = self._last
        j = n_old + i
        lo = max(0, j - self.lookback + 1)
        xs, ys = all_s[lo : j + 1].astype(float), _log(np.abs(all_v[lo : j + 1]))
        if len(xs) >= 3 and np.ptp(xs) > 0:
            from scipy.stats import theilslopes  # slow to import: only when a finding is made

            slope = theilslopes(ys, xs)[0]
            ev["theil_sen_" + key] = json_number(math.log(2) / abs(slope) if slope else math.inf)
        return ev

    def thresholds(self) -> dict[str, Any]:
        out: dict[str, Any] = {"window": 3 * self.k, "min_factor": self.p.min_factor}
        if self.doubling_steps is not None:
            out["max_" + ("doubling" if self.p.direction == "up" else "halving") + "_steps"] = (
                self.doubling_steps
            )
        return out


class LevelParams(Params):
    one_of = ("below_frac", "above_frac", "floor")
    window: int = Field(51, ge=1, le=100_001)
    reference: Literal["peak", "trough", "early"] = "peak"
    below_frac: Number = None
    above_frac: Number = None
    floor: Number = None
    early_samples: int = Field(51, ge=1)
    skip_samples: int = Field(0, ge=0)
    after_step: StepNumber = 0
    min_reference: Number = None


class RelativeLevel(Detector):
    """The rolling median over `window` samples relative to the run's own reference level: its
    running `peak` (decay toward zero) or `trough` (a rebound: the loss climbing back up from its
    best), both counted from `after_step` on, or its `early` level (the median of the first `early_samples` samples
    after `skip_samples`: no progress since the start). Fires when the ratio is at most
    `below_frac` or at least `above_frac`, or the level is at most the absolute `floor`.

    Defaults to start from: smdebug's VanishingGradient (mean |grad| below 1e-7) for the floor;
    a 100x fall from the run's own peak for the relative test, since gradient scales differ
    between models far more than their in-run ratios do.
    """

    Params = LevelParams
    stat_name = "ratio"
    summary = "the level relative to the run's own peak, trough or early level"

    def setup(self) -> None:
        self.window = odd_window(self.p.window)
        self.lookback = self.window
        self._ref: float | None = None
        self._early: list[float] = []

    def compute(self, s, v, n_old, aux) -> Signal:
        level = rolling_median(v, self.window)[n_old:]
        steps, raw = s[n_old:], v[n_old:]
        n = len(steps)
        idx = np.arange(self._n_seen, self._n_seen + n)
        start = max(self.p.skip_samples, self.window - 1)
        ref = np.full(n, np.nan)
        if self.p.reference == "early":
            if self._ref is None:
                need = self.p.early_samples - len(self._early)
                take = raw[idx >= self.p.skip_samples][:need]
                self._early.extend(float(x) for x in take)
                if len(self._early) >= self.p.early_samples:
                    self._ref = float(np.median(self._early))
                    first = int(np.nonzero(idx >= self.p.skip_samples)[0][need - 1]) + 1
                    ref[first:] = self._ref
            else:
                ref[:] = self._ref
        else:
            # The running peak/trough counts from `after_step` on: warmup transients (a tiny
            # gradient at step 10, a large one at step 100) are not the run's own level.
            valid = (idx >= start) & (steps >= self.after_step)
            if valid.any():
                lv = np.where(valid, level, -np.inf if self.p.reference == "peak" else np.inf)
                prev = self._ref
                if prev is not None:
                    lv = np.concatenate([[prev], lv])
                acc = (np.maximum if self.p.reference == "peak" else np.minimum).accumulate(lv)
                if prev is not None:
                    acc = acc[1:]
                acc = np.where(np.isfinite(acc), acc, np.nan)
                ref[:] = acc
                last = acc[-1]
                self._ref = float(last) if np.isfinite(last) else prev
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref != 0, level / ref, np.nan)
        ok = np.isfinite(ref) & (idx >= start) & (steps >= self.after_step)
        if self.min_reference is not None:
            ok &= np.abs(ref) >= self.min_reference
        cond = np.zeros(n, bool)
        if self.below_frac is not None:
            cond |= ratio <= self.below_frac
        if self.above_frac is not None:
            cond |= ratio >= self.above_frac
        if self.floor is not None:
            cond |= level <= self.floor
        cond &= ok
        return Signal(steps, cond, ratio, level, ref)

    def thresholds(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference_kind": self.p.reference, "window": self.window}
        for k, val in (("below_frac", self.below_frac), ("above_frac", self.above_frac)):
            if val is not None:
                out[k] = val
        if self.floor is not None:
            out["floor"] = self.floor
        return out


class DecayParams(LevelParams):
    reference: Literal["peak", "trough", "early"] = "peak"


class NoProgressParams(LevelParams):
    reference: Literal["peak", "trough", "early"] = "early"


class ReboundParams(LevelParams):
    reference: Literal["peak", "trough", "early"] = "trough"


class Decay(RelativeLevel):
    """Decay toward zero (vanishing): the smoothed level falls to `below_frac` of its peak."""

    Params = DecayParams


class NoProgress(RelativeLevel):
    """No progress: the smoothed level is still at least `above_frac` of its early level."""

    Params = NoProgressParams


class Rebound(RelativeLevel):
    """A rebound: the smoothed level climbs to `above_frac` times its best (lowest) level."""

    Params = ReboundParams


class PlateauParams(Params):
    window: int = Field(601, ge=9, le=100_001)
    prior_window: int = Field(1203, ge=9, le=100_001)
    eps: float = Field(0.01, ge=0)
    prior_min: float = Field(0.08, ge=0)
    ratio_max: float = Field(0.25, ge=0, le=1)
    after_step: StepNumber = 0
    floor: Number = None
    direction: Literal["down", "up"] = "down"


class Plateau(Detector):
    """Progress that stops abruptly. Two consecutive windows: the `prior_window` samples before
    the last `window` samples. In each, a resistant line (medians of thirds) gives the relative
    improvement across the window. Fires when the prior window improved by at least
    `prior_min`, monotonically across its thirds, and the recent window by less than `eps` and
    less than `ratio_max` of what the prior rate predicts. A curve that slows down smoothly
    keeps improving at a similar rate from one window to the next, so it stays quiet; an abrupt
    stop fires about one `window` after it. Medians of hundreds of samples make isolated spikes
    and short wobbles irrelevant. A run that never improved is `no_progress`.

    Defaults to start from: smdebug's LossNotDecreasing (relative change below 0.1% over a
    window) is the classic; it fires on every converged run, hence the "prior improvement" test.
    """

    Params = PlateauParams
    stat_name = "improvement"
    summary = "relative improvement over a window drops to ~0 after clear progress"

    def setup(self) -> None:
        self.kr = odd(max(3, self.p.window // 3))
        self.kp = odd(max(3, self.p.prior_window // 3))
        self.lookback = 3 * self.kr + 3 * self.kp

    def compute(self, s, v, n_old, aux) -> Signal:
        kr, kp = self.kr, self.kp
        mr = rolling_median(v, kr)
        mp = rolling_median(v, kp) if kp != kr else mr
        r3, r2, r1 = mr, shift(mr, kr), shift(mr, 2 * kr)
        p3, p2, p1 = shift(mp, 3 * kr), shift(mp, 3 * kr + kp), shift(mp, 3 * kr + 2 * kp)
        sl = slice(n_old, None)
        r3, r2, r1, p3, p2, p1, steps = r3[sl], r2[sl], r1[sl], p3[sl], p2[sl], p1[sl], s[sl]
        sign = 1.0 if self.p.direction == "down" else -1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            recent = sign * (r1 - r3) / np.abs(r1)
            prior = sign * (p1 - p3) / np.abs(p1)
            mono = (sign * (p1 - p2) > 0) & (sign * (p2 - p3) > 0)
            # What the prior rate predicts over the recent window (its span in thirds).
            expected = prior * (2 * kr) / (2 * kp)
        self.scratch["prior"] = prior
        n = len(steps)
        seen = np.arange(self._n_seen + 1, self._n_seen + n + 1)
        cond = (
            mono
            & (prior >= self.p.prior_min)
            & (recent <= np.minimum(self.p.eps, self.p.ratio_max * expected))
            & (recent >= -3 * self.p.eps)  # getting worse is a rebound, not a plateau
            & (seen >= self.lookback)
            & (steps >= self.after_step)
        )
        if self.floor is not None:
            cond &= r3 > self.floor
        return Signal(steps, cond, recent, r3, p1)

    def evidence(self, i: int) -> dict[str, Any]:
        ev = super().evidence(i)
        ev["prior_improvement"] = json_number(self.scratch["prior"][i])
        return ev

    def thresholds(self) -> dict[str, Any]:
        return {
            "window": 3 * self.kr,
            "prior_window": 3 * self.kp,
            "eps": self.p.eps,
            "prior_min": self.p.prior_min,
        }
