"""The rows of one rank in one update, and rule guards evaluated over them.

`RankRows` gives a metric's logged samples of one rank without copying the wide frame;
`Guard` smooths and carries forward other metrics of the same rank to the steps a rule judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.detectors.base import rolling_median


@dataclass
class Guard:
    """A rule's guard on other metrics of one rank: each metric smoothed by a rolling median
    over `window` samples and carried forward to the steps where the rule's series is judged."""

    expr: ex.Expr
    window: int
    lookup: Any
    missing_pass: bool
    tails: dict[str, np.ndarray] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)
    _chunk: dict[str, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)

    def consume(self, rows: RankRows) -> None:
        """Take this update's samples of the guard's metrics (called once per update)."""
        self._chunk = {}
        for m in self.expr.metrics:
            before = self.last.get(m, np.nan)
            s, v = rows.samples(m, self.last_step.get(m, -1))
            if len(s):
                prev = self.tails.get(m, np.zeros(0))
                all_v = np.concatenate([prev, v])
                sm = rolling_median(all_v, self.window)[len(prev) :]
                self.last[m], self.last_step[m] = float(sm[-1]), int(s[-1])
                self.tails[m] = all_v[-max(self.window, 1) :].copy()  # not a view of the chunk
            else:
                sm = np.zeros(0)
            self._chunk[m] = (s, sm, before)

    def evaluate(self, at_steps: np.ndarray) -> np.ndarray:
        arrays: dict[str, np.ndarray] = {}
        unknown = np.zeros(at_steps.shape, bool)
        for m, (s, sm, before) in self._chunk.items():
            idx = np.searchsorted(s, at_steps, side="right") - 1
            arrays[m] = np.where(idx >= 0, sm[np.maximum(idx, 0)] if len(sm) else before, before)
            unknown |= np.isnan(arrays[m])
        with np.errstate(invalid="ignore"):
            res = self.expr.evaluate(self.lookup, arrays.__getitem__)
        res = np.broadcast_to(np.asarray(res, bool), at_steps.shape).copy()
        # Before a guard metric is first logged (or when the run never logs it) the guard
        # passes or blocks as the rule says; per step, so chunking cannot change it.
        res[unknown] = self.missing_pass
        return res


class RankRows:
    """The rows of one rank in one update, with cheap access to a metric's logged samples."""

    def __init__(
        self,
        steps: np.ndarray,
        values: np.ndarray,
        logged: np.ndarray | None,
        col_index: dict[str, int],
        rows: np.ndarray | None,
    ) -> None:
        self.steps = steps if rows is None else steps[rows]
        # values: rows x metric columns (the update's frame as one array)
        self.values, self.logged, self.col_index, self.rows = values, logged, col_index, rows
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._samples: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(values float64, logged bool) of a metric for this rank's rows."""
        if name in self._cache:
            return self._cache[name]
        j = self.col_index.get(name)
        if j is None:
            return None
        v = self.values[:, j].astype(np.float64)
        lg = self.logged[:, j] if self.logged is not None else ~np.isnan(v)
        if self.rows is not None:
            v, lg = v[self.rows], lg[self.rows]
        self._cache[name] = (v, lg)
        return v, lg

    def samples(self, name: str, after: int, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The metric's logged samples of this rank after step `after` (finite ones only with
        `finite`); shared by every rule that reads the same metric from the same step."""
        key = (name, after, finite)
        got = self._samples.get(key)
        if got is not None:
            return got
        col = self.column(name)
        if col is None:
            return np.zeros(0, np.int64), np.zeros(0)
        v, lg = col
        sel = lg if len(self.steps) == 0 or after < self.steps[0] else lg & (self.steps > after)
        if finite:
            sel = sel & np.isfinite(v)
        # the common case, every row logged and finite: the arrays themselves, no copy
        got = (self.steps, v) if sel.all() else (self.steps[sel], v[sel])
        self._samples[key] = got
        return got
