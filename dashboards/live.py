"""`LiveRun`: one run's scalars in memory, extended on each refresh with only the new rows.

A `RunReader` keeps a byte offset per segment, so `refresh` decodes only what was appended since
the last call (`RunReader.poll`); a resume or rollback drops the superseded rows of that rank
before the new ones are added. Non-finite logged values are kept as events, so that charts can
mark them instead of silently dropping them. No Streamlit here: `data` caches one per run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrm_doctor.telemetry import RunReader

_KEYS = ["step", "rank", "time"]


@dataclass(frozen=True)
class Series:
    """One line of a chart: steps and values (finite only), and where the value was non-finite."""

    label: str
    x: np.ndarray  # int64 steps, increasing
    y: np.ndarray  # float64, finite
    bad_x: np.ndarray  # steps where a logged value was NaN or +-inf
    bad_kind: np.ndarray  # "NaN", "+inf" or "-inf" for each bad_x


class LiveRun:
    """A run's scalar timeline, kept current by `refresh` (thread-safe: sessions share one)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader = RunReader(self.path)  # raises UserError for a non-run
        self._lock = threading.Lock()
        self._frame = pd.DataFrame({"step": np.empty(0, np.int64), "rank": np.empty(0, np.int64)})
        self._pending: list[pd.DataFrame] = []
        self._bad: list[pd.DataFrame] = []
        self._bad_frame = pd.DataFrame({"step": [], "rank": [], "metric": [], "value": []})
        self._needs_merge = False
        self._max_step: dict[int, int] = {}
        self.version = 0  # bumped whenever new rows arrive: a cache key for derived data
        self.refreshed_at = 0.0

    # ---- reading ------------------------------------------------------------------------------

    def refresh(self) -> int:
        """Read only what was appended since the last refresh; return the data version."""
        with self._lock:
            df, logged = self._reader.poll(with_mask=True, with_time=True)
            self.refreshed_at = time.time()
            rollback: dict[int, int] = df.attrs.get("rollback", {}) if len(df.attrs) else {}
            if rollback:
                self._consolidate()
                keep = np.ones(len(self._frame), bool)
                for rank, step in rollback.items():
                    keep &= ~((self._frame["rank"] == rank) & (self._frame["step"] >= step))
                    self._max_step[rank] = step - 1
                self._frame = self._frame[keep].reset_index(drop=True)
                bad = self._bad_frame
                bkeep = np.ones(len(bad), bool)
                for rank, step in rollback.items():
                    bkeep &= ~((bad["rank"] == rank) & (bad["step"] >= step))
                self._bad_frame = bad[bkeep].reset_index(drop=True)
                self.version += 1
            if not len(df):
                return self.version
            for rank, grp in df.groupby("rank", sort=False)["step"]:
                lo, hi = int(grp.min()), int(grp.max())
                if lo <= self._max_step.get(int(rank), -1):
                    self._needs_merge = True  # a step already held got more metrics
                self._max_step[int(rank)] = max(hi, self._max_step.get(int(rank), -1))
            self._pending.append(df)
            self._note_nonfinite(df, logged)
            self.version += 1
            return self.version

    def _note_nonfinite(self, df: pd.DataFrame, logged: np.ndarray) -> None:
        names = [c for c in df.columns if c not in _KEYS]
        if not names:
            return
        values = df[names].to_numpy()
        bad = logged & ~np.isfinite(values)
        if not bad.any():
            return
        rows, cols = np.nonzero(bad)
        self._bad.append(
            pd.DataFrame(
                {
                    "step": df["step"].to_numpy()[rows],
                    "rank": df["rank"].to_numpy()[rows],
                    "metric": np.asarray(names, dtype=object)[cols],
                    "value": values[rows, cols].astype(np.float64),
                }
            )
        )

    def _consolidate(self) -> None:
        if self._pending:
            parts = [self._frame, *self._pending] if len(self._frame) else self._pending
            self._frame = pd.concat(parts, ignore_index=True, copy=False)
            self._pending = []
        if self._needs_merge:
            # Rows of one (step, rank) that arrived in separate polls: the newest logged value wins.
            self._frame = self._frame.groupby(["step", "rank"], as_index=False, sort=True).last()
            self._needs_merge = False
        if self._bad:
            self._bad_frame = pd.concat([self._bad_frame, *self._bad], ignore_index=True)
            self._bad = []

    def frame(self) -> pd.DataFrame:
        """Every row so far: step, rank, time, then one column per metric (do not mutate)."""
        with self._lock:
            self._consolidate()
            return self._frame

    def nonfinite(self) -> pd.DataFrame:
        """Logged non-finite values: step, rank, metric, value (NaN or +-inf)."""
        with self._lock:
            self._consolidate()
            return self._bad_frame

    def tensors(self, name: str) -> pd.DataFrame:
        with self._lock:
            return self._reader.tensors(name)

    # ---- facts about the run -----------------------------------------------------------------

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.frame().columns if c not in _KEYS]

    @property
    def tensor_names(self) -> list[str]:
        with self._lock:
            return self._reader.tensor_names

    @property
    def status(self) -> str:
        with self._lock:
            return self._reader.status

    @property
    def last_write_time(self) -> float | None:
        with self._lock:
            return self._reader.last_write_time

    @property
    def config(self) -> dict[str, Any]:
        return self._reader.config

    @property
    def meta(self) -> dict[str, Any]:
        with self._lock:
            return self._reader.meta

    def ranks(self) -> list[int]:
        f = self.frame()
        return sorted(int(r) for r in f["rank"].unique()) if len(f) else []

    def step_bounds(self) -> tuple[int, int] | None:
        f = self.frame()
        if not len(f):
            return None
        return int(f["step"].min()), int(f["step"].max())

    def steps_per_s(self) -> float | None:
        """Training speed: 1 / median ``sys/step_time_s`` of the newest 100 steps when the trainer
        logs it, else steps per wall-clock second over the newest 100 rows of the lowest rank.

        The trainer's own step time is preferred because write times lie for an imported run
        (they are the import's) and mix in evaluation and checkpoint pauses.
        """
        f = self.frame()
        if len(f) < 2:
            return None
        low = f[f["rank"] == f["rank"].min()]
        if "sys/step_time_s" in low:
            recent = low["sys/step_time_s"].dropna().tail(100)
            med = float(recent.median()) if len(recent) else float("nan")
            if np.isfinite(med) and med > 0:
                return 1.0 / med
        if "time" not in low:
            return None
        tail = low.sort_values("step").tail(100) if len(low) > 100 else low.sort_values("step")
        dt = float(tail["time"].iloc[-1] - tail["time"].iloc[0])
        ds = int(tail["step"].iloc[-1] - tail["step"].iloc[0])
        return ds / dt if dt > 0 and ds > 0 else None

    # ---- series for charts --------------------------------------------------------------------

    def series(
        self,
        metric: str,
        *,
        lo: int | None = None,
        hi: int | None = None,
        per_rank: bool = False,
    ) -> list[Series]:
        """The metric over steps in [lo, hi]: the mean over ranks, or one series per rank."""
        f = self.frame()
        if metric not in f.columns:
            return []
        sub = f[["step", "rank", metric]]
        if lo is not None or hi is not None:
            steps = sub["step"]
            sel = np.ones(len(sub), bool)
            if lo is not None:
                sel &= steps.to_numpy() >= lo
            if hi is not None:
                sel &= steps.to_numpy() <= hi
            sub = sub[sel]
        bad = self.nonfinite()
        bad = bad[bad["metric"] == metric]
        if lo is not None:
            bad = bad[bad["step"] >= lo]
        if hi is not None:
            bad = bad[bad["step"] <= hi]
        multi = sub["rank"].nunique() > 1
        groups: list[tuple[str, pd.DataFrame, pd.DataFrame]]
        if per_rank and multi:
            groups = [
                (f"rank {int(r)}", g, bad[bad["rank"] == r])
                for r, g in sub.groupby("rank", sort=True)
            ]
        else:
            groups = [(metric, sub, bad)]
        out: list[Series] = []
        for label, g, b in groups:
            vals = g[metric].to_numpy(dtype=np.float64)
            ok = np.isfinite(vals)
            x = g["step"].to_numpy()[ok]
            y = vals[ok]
            if g["rank"].nunique() > 1:
                # Mean over ranks per step (finite values only: non-finite ones are marked).
                s = pd.Series(y).groupby(x, sort=True).mean()
                x, y = s.index.to_numpy(), s.to_numpy()
            elif len(x) > 1 and not (np.diff(x) > 0).all():
                order = np.argsort(x, kind="stable")
                x, y = x[order], y[order]
            bsteps = b.drop_duplicates("step").sort_values("step")
            kinds = np.where(
                np.isnan(bsteps["value"].to_numpy()),
                "NaN",
                np.where(bsteps["value"].to_numpy() > 0, "+inf", "-inf"),
            )
            out.append(
                Series(
                    label,
                    x.astype(np.int64),
                    y.astype(np.float64),
                    bsteps["step"].to_numpy(np.int64),
                    kinds,
                )
            )
        return out
