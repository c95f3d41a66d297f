"""Detectors that relate series to each other, to the config, or to the clock: divergence
across ranks, train/eval gap, evaluation share of wall-clock, config checks, stalled runs."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy import ndimage

from hrm_doctor.engine.detectors.base import (
    EVIDENCE_SAMPLES,
    Detector,
    Number,
    Params,
    Seconds,
    Signal,
    StepNumber,
    json_number,
    odd_window,
)


class RankDivergenceParams(Params):
    window: int = Field(51, ge=1, le=10_001)
    ratio: float = Field(gt=0)
    stat: Literal["max_over_median", "max_over_min", "spread"] = "max_over_median"
    min_ranks: int = Field(2, ge=2)
    min_level: Number = None
    after_step: StepNumber = 0


class RankDivergence(Detector):
    """Ranks that disagree at the same step. Each rank's series is smoothed by a rolling median
    over `window` steps (batch noise averages out, a persistent difference does not); then, per
    step, the largest rank over the median rank (`max_over_median`: one straggler), largest
    over smallest (`max_over_min`), or (max - min) / median (`spread`: desync) reaches `ratio`.

    Defaults to start from: PyTorch's DDP straggler guidance and Megatron's per-rank timers
    report the max/min spread of step time; 1.2-1.3 is where a straggler costs 20-30%.
    """

    Params = RankDivergenceParams
    kind = "ranks"
    stat_name = "ratio"
    summary = "one rank's smoothed level departs from the others"

    def setup(self) -> None:
        self.window = odd_window(self.p.window)
        self.lookback = self.window
        self._tail_m = np.zeros((0, 0))
        self._last_fill: np.ndarray | None = None
        self._count: np.ndarray | None = None

    def update_ranks(self, steps: np.ndarray, matrix: np.ndarray) -> Signal:
        """steps (n,), matrix (n, ranks) with NaN where a rank did not log at that step."""
        n, r = matrix.shape
        if self._last_fill is None:
            self._last_fill = np.full(r, np.nan)
            self._count = np.zeros(r, np.int64)
            self._tail_m = np.zeros((0, r))
        elif r != len(self._last_fill):
            raise ValueError(f"rank count changed from {len(self._last_fill)} to {r}")
        filled = matrix.astype(np.float64, copy=True)
        counts = np.zeros((n, r), np.int64)
        for j in range(r):
            col = filled[:, j]
            fin = np.isfinite(col)
            idx = np.where(fin, np.arange(n), -1)
            np.maximum.accumulate(idx, out=idx)
            col[:] = np.where(idx >= 0, col[np.maximum(idx, 0)], self._last_fill[j])
            counts[:, j] = self._count[j] + np.cumsum(fin)
            if n:
                self._last_fill[j] = col[-1]
                self._count[j] = counts[-1, j]
        n_old = self._tail_m.shape[0]
        all_m = np.vstack([self._tail_m, filled]) if n_old else filled
        all_s = np.concatenate([self._tail_s, steps]) if n_old else steps
        if self.window > 1:
            smooth = (
                np.column_stack(
                    [
                        _median_nan(all_m[:, j], self.window) if all_m.shape[0] else all_m[:, j]
                        for j in range(r)
                    ]
                )
                if r
                else all_m
            )
        else:
            smooth = all_m
        sm = smooth[n_old:]
        valid = counts >= max(1, self.window // 2)
        sm = np.where(valid, sm, np.nan)
        n_valid = valid.sum(axis=1)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            hi = np.nanmax(np.where(valid, sm, -np.inf), axis=1) if r else np.full(n, np.nan)
            lo = np.nanmin(np.where(valid, sm, np.inf), axis=1) if r else np.full(n, np.nan)
            med = np.nanmedian(sm, axis=1) if r else np.full(n, np.nan)
            if self.p.stat == "max_over_median":
                stat = hi / med
            elif self.p.stat == "max_over_min":
                stat = hi / lo
            else:
                stat = (hi - lo) / np.abs(med)
        cond = (n_valid >= self.p.min_ranks) & (stat >= self.p.ratio) & (steps >= self.after_step)
        if self.min_level is not None:
            cond &= med >= self.min_level
        self.scratch["sm"] = sm
        self._last = (all_s, all_m, n_old, Signal(steps, cond, stat, med, lo))
        keep = max(self.lookback, EVIDENCE_SAMPLES)
        self._tail_s, self._tail_m = all_s[-keep:].copy(), all_m[-keep:].copy()
        return Signal(steps, cond, stat, med, lo)

    def evidence(self, i: int) -> dict[str, Any]:
        all_s, all_m, n_old, sig = self._last
        row = self.scratch["sm"][i]
        finite = np.isfinite(row)
        worst = int(np.nanargmax(np.where(finite, row, -np.inf))) if finite.any() else None
        ev = {
            "step": int(sig.steps[i]),
            self.stat_name: json_number(sig.stat[i]),
            "threshold": self.p.ratio,
            "stat": self.p.stat,
            "window": self.window,
            "worst_rank": worst,
            "median_over_ranks": json_number(sig.level[i]),
            "per_rank": {str(j): json_number(x) for j, x in enumerate(row) if np.isfinite(x)},
        }
        return ev


def _median_nan(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling median of a column whose leading entries may be NaN (rank not started)."""
    out = np.full(len(x), np.nan)
    fin = np.isfinite(x)
    if not fin.any():
        return out
    first = int(np.argmax(fin))
    seg = x[first:]
    out[first:] = ndimage.median_filter(seg, size=window, mode="nearest", origin=window // 2)
    return out


class GapParams(Params):
    train: str = "train/exact_accuracy"
    train_window: int = Field(201, ge=1)
    train_min: float = 0.95
    gap_min: float = 0.2
    patience: int = Field(3, ge=1)
    min_gain: float = Field(0.01, ge=0)


class Gap(Detector):
    """Train/eval gap (overfitting): at an evaluation, the training metric (median of its last
    `train_window` samples) is at least `train_min`, exceeds the eval metric by `gap_min`, and
    the eval metric has not gained `min_gain` over its best in the last `patience` evaluations.

    Defaults to start from: smdebug's Overfit rule (patience 10 evaluations, ratio 0.1) and the
    HRM authors' advice for Sudoku-Extreme 1k: stop early once train accuracy nears 100%.
    """

    Params = GapParams
    stat_name = "gap"
    summary = "train metric near its ceiling while the eval metric stalls"

    def setup(self) -> None:
        self.lookback = self.p.patience + 1
        self._train = np.zeros(0)
        self._train_s = np.zeros(0, np.int64)
        self._evals: list[float] = []
        self._best_old = -np.inf  # best eval older than the patience window

    def aux_metrics(self) -> list[str]:
        return [self.p.train]

    def compute(self, s, v, n_old, aux) -> Signal:
        ts, tv = aux.get(self.p.train, (np.zeros(0, np.int64), np.zeros(0)))
        tr_s = np.concatenate([self._train_s, ts])
        tr_v = np.concatenate([self._train, tv])
        steps, vals = s[n_old:], v[n_old:]
        n = len(steps)
        cond = np.zeros(n, bool)
        gap = np.full(n, np.nan)
        level = np.full(n, np.nan)
        w, pat = self.p.train_window, self.p.patience
        for i, (st, ev) in enumerate(zip(steps, vals)):
            upto = int(np.searchsorted(tr_s, st, side="right"))
            if upto:
                level[i] = float(np.median(tr_v[max(0, upto - w) : upto]))
            self._evals.append(float(ev))
            if len(self._evals) > pat + 1:
                self._best_old = max(self._best_old, self._evals.pop(0))
            gap[i] = level[i] - ev
            if len(self._evals) == pat + 1:
                best_before = max(self._best_old, self._evals[0])
                stalled = max(self._evals[1:]) < best_before + self.p.min_gain
                cond[i] = bool(
                    stalled and level[i] >= self.p.train_min and gap[i] >= self.p.gap_min
                )
        keep = max(w, 1)
        self._train_s, self._train = tr_s[-keep:].copy(), tr_v[-keep:].copy()
        return Signal(steps, cond, gap, vals, level)

    def thresholds(self) -> dict[str, Any]:
        return {
            "train_metric": self.p.train,
            "train_min": self.p.train_min,
            "gap_min": self.p.gap_min,
            "patience_evals": self.p.patience,
        }


class EvalShareParams(Params):
    step_time: str = "sys/step_time_s"
    share: float = Field(1.0, gt=0)
    window: int = Field(101, ge=1)
    min_eval_s: float = Field(60.0, ge=0)


class EvalShare(Detector):
    """Evaluation dominating wall-clock: the seconds of one evaluation are at least `share`
    times the training time since the previous evaluation (median step time x steps)."""

    Params = EvalShareParams
    stat_name = "share"
    summary = "evaluation time over training time between evaluations"

    def setup(self) -> None:
        self.lookback = 2
        self._st = np.zeros(0)
        self._st_s = np.zeros(0, np.int64)
        self._prev_eval: int | None = None

    def aux_metrics(self) -> list[str]:
        return [self.p.step_time]

    def compute(self, s, v, n_old, aux) -> Signal:
        ts, tv = aux.get(self.p.step_time, (np.zeros(0, np.int64), np.zeros(0)))
        st_s = np.concatenate([self._st_s, ts])
        st_v = np.concatenate([self._st, tv])
        steps, vals = s[n_old:], v[n_old:]
        n = len(steps)
        share = np.full(n, np.nan)
        train_s = np.full(n, np.nan)
        for i, (st, ev) in enumerate(zip(steps, vals)):
            upto = int(np.searchsorted(st_s, st, side="right"))
            prev = (
                self._prev_eval
                if self._prev_eval is not None
                else (int(st_s[0]) if len(st_s) else st)
            )
            if upto and st > prev:
                med = float(np.median(st_v[max(0, upto - self.p.window) : upto]))
                train_s[i] = med * (int(st) - prev)
                share[i] = ev / train_s[i] if train_s[i] > 0 else np.nan
            self._prev_eval = int(st)
        cond = (share >= self.p.share) & (vals >= self.p.min_eval_s)
        keep = max(self.p.window, 1)
        self._st_s, self._st = st_s[-keep:].copy(), st_v[-keep:].copy()
        return Signal(steps, cond, share, vals, train_s)

    def thresholds(self) -> dict[str, Any]:
        return {"share_min": self.p.share}


class ConfigCheckParams(Params):
    check: str


class ConfigCheck(Detector):
    """A check on the resolved config, made once before any step is judged: it fires at step 0
    when the expression `check` is true (``lr_min_ratio >= 1 and epochs >= 20000``)."""

    Params = ConfigCheckParams
    kind = "config"
    stat_name = "check"
    summary = "a condition on the run's config"


class StallParams(Params):
    after_s: Seconds = 900.0
    eval_factor: float = Field(1.5, ge=0)


class Stall(Detector):
    """A run marked running whose newest data is older than `after_s` seconds (and older than
    `eval_factor` times the longest evaluation seen, which also produces no steps). Judged on
    the clock passed in, so it fires with no new data."""

    Params = StallParams
    kind = "time"
    stat_name = "silent_s"
    summary = "no new step for too long"

    def setup(self) -> None:
        self.after_s = float(self.after_s)

    def limit_s(self, longest_eval_s: float) -> float:
        return max(self.after_s, self.p.eval_factor * longest_eval_s)
