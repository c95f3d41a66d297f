"""Detectors that judge each sample against fixed limits: non-finite, threshold, fraction."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from hrm_doctor.engine.detectors.base import (
    Detector,
    Number,
    Params,
    Signal,
    StepNumber,
    TrailingMedian,
    median_beyond,
)


class NonFinite(Detector):
    """A logged NaN or +/-inf. Fires at the very step it appears (smdebug ExplodingTensor,
    Lightning's ``EarlyStopping(check_finite=True)``, Megatron's NaN check on loss and grads)."""

    class Params(Params):
        pass

    finite_only = False
    stat_name = "value"
    summary = "the value is NaN or infinite"

    def compute(self, s, v, n_old, aux) -> Signal:
        new = v[n_old:]
        cond = ~np.isfinite(new)
        return Signal(s[n_old:], cond, new, new)

    def evidence(self, i: int) -> dict[str, Any]:
        ev = super().evidence(i)
        finite = [p for p in ev["recent"] if isinstance(p[1], (int, float))]
        ev["last_finite_step"], ev["last_finite_value"] = finite[-1] if finite else (None, None)
        return ev


class ThresholdParams(Params):
    one_of = ("above", "below")
    above: Number = None
    below: Number = None
    window: int = Field(1, ge=1, le=100_000)
    min_samples: int | None = Field(None, ge=1)
    after_step: StepNumber = 0
    arm_below: Number = None
    arm_above: Number = None
    arm_window: int | None = Field(None, ge=1, le=100_000)
    abs: bool = False


class Threshold(Detector):
    """The rolling median of `window` samples (1: the raw value) is above `above` or below
    `below`. With `arm_below`/`arm_above` the check starts only once the level has first been
    on the other side: "halting at max again, after it had learned to halt" is a regression,
    not the untrained start; `arm_window` (default `window`) is the median's window for that
    first crossing (a longer one: the level must have stayed on the other side, not swung
    there for a few dozen steps). Limits may be config expressions
    (``arch.halt_max_steps - 0.5``)."""

    Params = ThresholdParams
    stat_name = "level"
    summary = "the (smoothed) level crosses a fixed limit"

    def setup(self) -> None:
        self.window = self.p.window
        self.min_samples = self.p.min_samples or self.p.window
        self.arm_window = self.p.arm_window or self.p.window
        self.lookback = max(self.p.window, self.arm_window)
        self._armed = self.arm_below is None and self.arm_above is None

    def compute(self, s, v, n_old, aux) -> Signal:
        x = np.abs(v) if self.p.abs else v
        steps = s[n_old:]
        n = len(steps)

        def beyond(limit: float, above: bool, window: int | None = None) -> np.ndarray:
            return median_beyond(x, window or self.window, limit, above)[n_old:]

        cond = np.zeros(n, bool)
        if self.above is not None:
            cond |= beyond(self.above, True)
        if self.below is not None:
            cond |= beyond(self.below, False)
        seen = np.arange(self._n_seen + 1, self._n_seen + n + 1)
        cond &= (seen >= self.min_samples) & (steps >= self.after_step)
        if not self._armed:
            arm = np.zeros(n, bool)
            if self.arm_below is not None:
                arm |= beyond(self.arm_below, False, self.arm_window)
            if self.arm_above is not None:
                arm |= beyond(self.arm_above, True, self.arm_window)
            arm &= seen >= max(self.min_samples, self.arm_window)
            armed = np.logical_or.accumulate(arm) if n else arm
            cond &= armed
            self._armed = bool(armed[-1]) if n else False
        level = TrailingMedian(x, self.window, n_old)  # the evidence reads one or two entries
        return Signal(steps, cond, level, level)

    def thresholds(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.above is not None:
            out["above"] = self.above
        if self.below is not None:
            out["below"] = self.below
        if self.window > 1:
            out["window"] = self.window
        return out


class FractionParams(ThresholdParams):
    window: int = Field(51, ge=1, le=100_000)


class Fraction(Threshold):
    """A fraction in [0, 1] (halting at the maximum, sign flips, premature halts) collapses
    toward one end: its rolling median over `window` samples (default 51) passes the limit."""

    Params = FractionParams
    summary = "a fraction collapses toward 0 or 1"
