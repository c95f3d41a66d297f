"""What every detector shares: the `Signal` it returns, the tail buffer, robust rolling windows.

A detector is pure: it sees samples (steps and values) and returns, for each new sample,
whether its condition holds and the statistic it compared. It keeps only the last `lookback`
samples (plus monotone state such as a running peak), and every output depends only on that
window, so feeding a run in one pass or in arbitrary chunks gives bit-identical results: the
rolling statistics are order statistics (scipy.ndimage rank filters), never running sums.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from scipy import ndimage

# Samples shown in a finding's evidence (the last ones up to the confirming step).
EVIDENCE_SAMPLES = 16

Resolve = Callable[[Any], Any]  # evaluates a parameter that may be a config expression


# A parameter that may be a config expression (``lr_warmup_steps``, ``arch.halt_max_steps - 0.5``):
# the detector receives it resolved against the run, as an attribute of the same name.
_EXPRESSION = "config-expression"
Number = Annotated[float | str | None, _EXPRESSION]
StepNumber = Annotated[int | str, _EXPRESSION]
Seconds = Annotated[float | str, _EXPRESSION]


class Params(BaseModel):
    """Base of every detector's parameters: unknown keys are errors; `one_of` names limits of
    which at least one must be given."""

    model_config = ConfigDict(extra="forbid")
    one_of: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_of_given(self):
        names = self.one_of
        if names and all(getattr(self, n) is None for n in names):
            quoted = [f"'{n}'" for n in names]
            if len(names) == 2:
                raise ValueError(f"give {quoted[0]} or {quoted[1]} (or both)")
            raise ValueError(f"give {', '.join(quoted[:-1])} or {quoted[-1]}")
        return self

    @classmethod
    def expressions(cls) -> list[str]:
        return _expression_fields(cls)


@functools.cache
def _expression_fields(cls: type) -> list[str]:
    return [n for n, f in cls.model_fields.items() if _EXPRESSION in f.metadata]


@dataclass
class Signal:
    """A detector's verdict on new samples, aligned with `steps`."""

    steps: np.ndarray  # int64
    cond: np.ndarray  # bool: the condition holds at this sample
    stat: np.ndarray  # float: the statistic compared with the threshold
    level: np.ndarray  # float: the value looked at (raw or smoothed)
    ref: np.ndarray | None = None  # float: the reference it was compared with

    @classmethod
    def empty(cls) -> Signal:
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), np.zeros(0, bool), z, z, None)


def odd(n: int) -> int:
    """Windows are odd so that the rolling median is one sample, not an average of two."""
    return int(n) | 1


def odd_window(n: int) -> int:
    """A smoothing window: 1 (the raw value) stays 1, any other is made odd."""
    return odd(n) if n > 1 else 1


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median of the trailing `window` samples (the first samples pad with x[0])."""
    if window <= 1 or len(x) == 0:
        return x.astype(np.float64, copy=True)
    w = odd(window)
    return ndimage.median_filter(x, size=w, mode="nearest", origin=w // 2)


def median_beyond(x: np.ndarray, window: int, limit: float, above: bool) -> np.ndarray:
    """Where `rolling_median(x, window)` is above (or below) `limit`, without computing it:
    the median of an odd window is above a limit exactly when at least half of the window's
    samples, rounded up, are. A running count, not a rank filter (a sweep's daemon judges
    thousands of thresholds per chunk)."""
    hit = (x > limit) if above else (x < limit)
    if window <= 1 or len(x) == 0:
        return hit
    w = odd(window)
    c = np.concatenate([[0], np.cumsum(hit, dtype=np.int64)])  # c[k]: hits among x[:k]
    j = np.arange(len(x))
    start = j - w + 1
    inside = c[j + 1] - c[np.maximum(start, 0)]
    padded = np.maximum(0, -start) * int(hit[0])  # the window's copies of x[0] (as the filter)
    return inside + padded >= (w + 1) // 2


class TrailingMedian:
    """`rolling_median(x, window)[offset:]` as a lazy array: only the entries read are computed
    (a finding's evidence reads one)."""

    def __init__(self, x: np.ndarray, window: int, offset: int) -> None:
        self.x, self.w, self.offset = x, (odd(window) if window > 1 else 1), offset

    def __len__(self) -> int:
        return len(self.x) - self.offset

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole array (what a caller that wants every entry gets)."""
        out = rolling_median(self.x, self.w)[self.offset :]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, i: int) -> float:
        j = self.offset + int(i)
        lo = j - self.w + 1
        part = self.x[max(lo, 0) : j + 1]
        if lo < 0:
            part = np.concatenate([np.full(-lo, self.x[0]), part])
        return float(np.median(part))


def shift(x: np.ndarray, k: int, fill: float = math.nan) -> np.ndarray:
    """x delayed by k samples: out[i] = x[i - k]."""
    if k <= 0:
        return x
    out = np.full_like(x, fill, dtype=np.float64)
    if k < len(x):
        out[k:] = x[:-k]
    return out


def param(resolve: Resolve, value: Any) -> Any:
    """A parameter value: numbers pass, strings are config expressions (``lr_warmup_steps``)."""
    return resolve(value) if isinstance(value, str) else value


class Detector:
    """Base class. Subclasses set `Params`, `stat_name`, `lookback` (in `setup`), and implement
    `compute`."""

    Params: ClassVar[type[Params]] = Params
    kind: ClassVar[str] = "series"  # series | ranks | config | time
    finite_only: ClassVar[bool] = True  # statistical detectors see finite samples only
    stat_name: ClassVar[str] = "value"
    summary: ClassVar[str] = ""

    def __init__(self, params: Params, resolve: Resolve) -> None:
        self.p = params
        for name in params.expressions():  # resolved against this run's config
            setattr(self, name, param(resolve, getattr(params, name)))
        self.lookback = 1
        self._tail_s = np.zeros(0, np.int64)
        self._tail_v = np.zeros(0)
        self._n_seen = 0  # samples seen before the current update
        # The last update's arrays, for `evidence` while the engine makes that update's findings;
        # `release` drops them, so that a detector holds its window and nothing else.
        self._last: tuple[np.ndarray, np.ndarray, int, Signal] | None = None
        self.scratch: dict[str, np.ndarray] = {}
        self.setup()

    def setup(self) -> None:
        """Derived settings and state (windows, lookback); `self.p` holds the parameters and
        each config-expression parameter is already an attribute, resolved for this run."""

    def aux_metrics(self) -> list[str]:
        """Other metrics this detector reads (same rank), besides its primary series."""
        return []

    def update(self, steps: np.ndarray, values: np.ndarray, aux: dict | None = None) -> Signal:
        """Evaluate new samples (sorted by step, all newer than any seen before)."""
        n_old = len(self._tail_s)
        all_s = np.concatenate([self._tail_s, steps]) if n_old else steps
        # the new samples are shared by every rule on this metric: read, never written to
        all_v = np.concatenate([self._tail_v, values]) if n_old else np.asarray(values, np.float64)
        sig = self.compute(all_s, all_v, n_old, aux or {})
        self._last = (all_s, all_v, n_old, sig)
        keep = max(self.lookback, EVIDENCE_SAMPLES)
        # copies: a view would keep the whole update's arrays alive (memory = O(window))
        self._tail_s, self._tail_v = all_s[-keep:].copy(), all_v[-keep:].copy()
        self._n_seen += len(steps)
        return sig

    def compute(self, s: np.ndarray, v: np.ndarray, n_old: int, aux: dict) -> Signal:
        raise NotImplementedError

    def release(self) -> None:
        """Drop the last update's arrays (its findings are made): only the window stays."""
        self._last = None
        self.scratch.clear()

    def evidence(self, i: int) -> dict[str, Any]:
        """Evidence for the i-th new sample of the last update: the statistic and recent data."""
        assert self._last is not None
        all_s, all_v, n_old, sig = self._last
        j = n_old + i
        lo = max(0, j - EVIDENCE_SAMPLES + 1)
        ev: dict[str, Any] = {
            "step": int(sig.steps[i]),
            "value": _num(all_v[j]),
            self.stat_name: _num(sig.stat[i]),
        }
        ev["level"] = _num(sig.level[i])
        if sig.ref is not None:
            ev["reference"] = _num(sig.ref[i])
        ev.update(self.thresholds())
        ev["recent"] = [[int(a), _num(b)] for a, b in zip(all_s[lo : j + 1], all_v[lo : j + 1])]
        return ev

    def thresholds(self) -> dict[str, Any]:
        """The resolved parameters worth showing next to the statistic."""
        return {}


def _num(x: Any) -> Any:
    """A JSON-safe number: floats rounded to 6 significant digits, non-finite as strings."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e15:
        return int(x) if abs(x) >= 1 or x == 0 else float(f"{x:.6g}")
    return float(f"{x:.6g}")


json_number = _num
