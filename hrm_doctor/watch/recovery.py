"""Did the run recover? What a patch is judged by (issue 14), not only whether its alarm stopped.

A hot patch can silence its finding and still leave the run damaged: lower the lr after an
explosion and the gradient norm calms down, but weights that were blown apart stay where they
landed and the run ends far below a healthy one. So a patch's effect check compares the run
after the patch with the run before the trouble began: the training loss back at (or below)
its level over the steps before the onset, and the token accuracy back at its level. A run
that does not get there within the check's budget is not healed: its patch escalates to a
rollback to a checkpoint from before the onset (under `hrm-doctor run --apply`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hrm_doctor._io import read_json
from hrm_doctor.rundir import META_FILE

# metric -> which way is better; the per-step mean over ranks is kept
RECOVERY_METRICS: dict[str, str] = {"train/lm_loss": "lower", "train/accuracy": "higher"}
KEEP_STEPS = 4096  # the newest steps kept per metric (a patch is judged within this reach)
PRE_ONSET_STEPS = 30  # the reference: the median of the steps just before the onset
POST_STEPS = 50  # the verdict: the median of the last steps of the check's budget
LOSS_TOLERANCE = 0.10  # a recovered loss is within 10 % of its level before the onset
ACCURACY_TOLERANCE = 0.03  # ... and the accuracy within 3 points of its level
MIN_SAMPLES = 5
LEARNED_FALL = 0.05  # a run has learned something once its loss is 5 % below its first steps'


def run_budget(run_dir: Path) -> int:
    """`effect_budget` of the run in `run_dir` (its meta.json's total_steps)."""
    return effect_budget((read_json(run_dir / META_FILE, default={}) or {}).get("total_steps"))


def effect_budget(total_steps: Any) -> int:
    """Steps a patch has to show its effect: 5 % of the run, 50 to 1,000 (100 when unknown)."""
    if isinstance(total_steps, int | float) and total_steps > 0:
        return int(min(1000, max(50, 0.05 * total_steps)))
    return 100


class RecentHistory:
    """The newest `keep` steps of a few metrics (per-step means over ranks), in bounded memory."""

    def __init__(self, names: Mapping[str, str] = RECOVERY_METRICS, keep: int = KEEP_STEPS) -> None:
        self.names, self.keep = dict(names), keep
        self.steps: dict[str, np.ndarray] = {n: np.zeros(0, np.int64) for n in self.names}
        self.values: dict[str, np.ndarray] = {n: np.zeros(0) for n in self.names}

    def add(self, df: Any) -> None:
        for name in self.names:
            if name not in df.columns:
                continue
            v = df[name].to_numpy(np.float64)
            s = df["step"].to_numpy()
            ok = np.isfinite(v)
            s, v = s[ok], v[ok]
            if not len(s):
                continue
            if "rank" in df.columns and df["rank"].nunique() > 1:  # the mean over ranks
                u, inv = np.unique(s, return_inverse=True)
                v = np.bincount(inv, weights=v) / np.bincount(inv)
                s = u
            steps = np.concatenate([self.steps[name], s])[-self.keep :]
            values = np.concatenate([self.values[name], v])[-self.keep :]
            self.steps[name], self.values[name] = steps.copy(), values.copy()

    def median(self, name: str, lo: int, hi: int) -> float | None:
        """The median of `name` over steps lo..hi (inclusive); None with too few samples."""
        s = self.steps.get(name)
        if s is None:
            return None
        v = self.values[name][(s >= lo) & (s <= hi)]
        return float(np.median(v)) if len(v) >= MIN_SAMPLES else None

    def reset(self) -> None:
        self.__init__(self.names, self.keep)


def before_onset(history: RecentHistory, onset: int) -> dict[str, float]:
    """Each metric's level over the steps just before `onset` (the run as it was)."""
    out = {}
    for name in history.names:
        level = history.median(name, onset - PRE_ONSET_STEPS, onset - 1)
        if level is not None:
            out[name] = level
    return out


def judge(history: RecentHistory, before: Mapping[str, float], at_step: int) -> tuple[bool, str]:
    """(recovered, why): the last `POST_STEPS` up to `at_step` against the levels `before`."""
    worse = []
    seen = []
    for name, then in before.items():
        now = history.median(name, at_step - POST_STEPS + 1, at_step)
        if now is None:
            continue
        seen.append(f"{name} {now:.4g} (before the onset {then:.4g})")
        if RECOVERY_METRICS.get(name) == "lower":
            if now > then * (1 + LOSS_TOLERANCE) + 1e-6:
                worse.append(f"{name} {now:.4g} against {then:.4g} before the onset")
        elif now < then - ACCURACY_TOLERANCE:
            worse.append(f"{name} {now:.4g} against {then:.4g} before the onset")
    if worse:
        return False, "the run did not recover: " + "; ".join(worse)
    if not seen:
        return True, "no recurrence (nothing logged to compare with the run before the onset)"
    return True, "recovered: " + "; ".join(seen)


def learned_by(run_dir: Any, step: int, steps: int = 20) -> bool:
    """Whether the run had learned anything by `step`: its training loss (per-step mean over
    ranks) over the `steps` steps up to `step` is 5 % or more below its first `steps` steps'.
    A checkpoint of a run that never learned holds nothing worth resuming, and often weights
    already wrecked (an lr without warmup does it in the first steps, long before an alarm
    about the gradient fires): a rollback then starts from scratch. Unknown: True."""
    from hrm_doctor.telemetry.reader import RunReader

    df = RunReader(run_dir).scalars(["train/lm_loss"], aggregate="mean")
    if "train/lm_loss" not in df:
        return True
    s, v = df["step"].to_numpy(), df["train/lm_loss"].to_numpy(float)
    keep = np.isfinite(v)
    s, v = s[keep], v[keep]
    first, at = v[:steps], v[(s > step - steps) & (s <= step)]
    if len(first) < MIN_SAMPLES or len(at) < MIN_SAMPLES:
        return True
    return bool(np.median(at) <= (1 - LEARNED_FALL) * np.median(first))
