"""`RunMonitor`: one run followed by the daemon: new rows -> the engine -> findings written once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hrm_doctor.rundir import read_findings
from hrm_doctor.severity import worst
from hrm_doctor.watch.findings_log import FindingsLog
from hrm_doctor.watch.lock import RunLock


def _existing_findings(run_dir: Path) -> list[Any]:
    from hrm_doctor.engine.finding import Finding

    out = []
    for obj in read_findings(run_dir):
        try:
            out.append(Finding.from_json(obj))
        except (KeyError, TypeError, ValueError):
            continue
    return out


# A silent run's writer status is re-read at most this often (it costs a listdir and a stat).
_STATUS_EVERY_S = 5.0


class RunMonitor:
    """Follow one run: poll only new rows, feed one `RuleEngine`, append its new findings.

    On start (or after a daemon restart) the engine is fed the whole run and the ids already in
    findings.jsonl are passed as known: nothing is written twice and nothing is missed. After a
    resume or rollback of the trainer, the engine is rebuilt over the new timeline.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        rule_set: Any,
        *,
        lock: bool = True,
        patches: Any = None,
    ) -> None:
        from hrm_doctor.telemetry import RunReader

        self.run_dir = Path(run_dir)
        self.rule_set = rule_set
        self._lock = RunLock(self.run_dir) if lock else None
        if self._lock is not None:
            self._lock.acquire()
        self.log = FindingsLog(self.run_dir)
        self.reader = RunReader(self.run_dir, keep_history=False)
        self.engine = None
        self.last_step: int | None = None
        self.last_data_time: float | None = None
        self.steps_per_s: float | None = None
        self.status = "empty"
        self._status_checked = 0.0
        self.patches = patches  # a PatchManager, or None
        self.patch_events: list[dict[str, Any]] = []  # ledger records made by the last call
        self.findings: list[Any] = []  # in findings.jsonl, newest last
        self.worst = "healthy"
        self._remember(_existing_findings(self.run_dir))

    def _new_engine(self):
        from hrm_doctor.engine.engine import RuleEngine

        meta = self.reader.meta
        return RuleEngine(
            self.rule_set,
            config=self.reader.config,
            meta=meta,
            world_size=meta.get("world_size"),
            known_ids=self.log.ids,
        )

    def update(self, now: float | None = None) -> list[Any]:
        """Read what is new, evaluate it, write and return the new findings (may be empty)."""
        now = time.time() if now is None else now
        df, logged = self.reader.poll(with_mask=True, with_time=True)
        new: list[Any] = []
        if df.attrs.get("rollback") and self.engine is not None:
            # the trainer resumed or was rolled back: judge the new timeline from scratch
            from hrm_doctor.telemetry import RunReader

            self.engine = self._new_engine()
            df, logged = RunReader(self.run_dir).scalars(with_mask=True, with_time=True)
        if len(df):
            if self.engine is None:
                self.engine = self._new_engine()
            new += self.engine.feed(df, logged, now=now)
            self._note_progress(df)
            self.status = "running"
            self._status_checked = now
        new += self.tick(now, _from_update=True)
        return self._write(new)

    def tick(self, now: float, *, _from_update: bool = False) -> list[Any]:
        """Time-based rules only (no I/O unless the run has been silent for a while)."""
        if self.engine is None:
            return []
        silent = now - (self.last_data_time or now)
        ended = self.status in ("finished", "failed", "crashed")  # until new data arrives
        if not ended and silent > _STATUS_EVERY_S and now - self._status_checked > _STATUS_EVERY_S:
            self.status = self.reader.status
            self._status_checked = now
        found = self.engine.tick(now, last_data_time=self.last_data_time, status=self.status)
        return found if _from_update else self._write(found)

    def finish(self) -> list[Any]:
        """End of data (``--once``): judge what across-rank rules still hold back."""
        if self.engine is None:
            return []
        return self._write(self.engine.finish())

    def _note_progress(self, df) -> None:
        step = int(df["step"].max())
        t = float(df["time"].max())
        if (
            self.last_step is not None
            and self.last_data_time is not None
            and t > self.last_data_time
        ):
            rate = (step - self.last_step) / (t - self.last_data_time)
            self.steps_per_s = (
                rate if self.steps_per_s is None else 0.7 * self.steps_per_s + 0.3 * rate
            )
        self.last_step = step if self.last_step is None else max(step, self.last_step)
        self.last_data_time = t

    def _write(self, found: list[Any]) -> list[Any]:
        written = self.log.append(found)
        self._remember(written)
        if self.patches is not None:
            now = time.time()
            events = []
            for f in written:
                events += self.patches.on_finding(f, now)
            # the engine's report only matters while an applied patch awaits its effect check
            judge = self.engine is not None and self.patches.awaiting_effect()
            report = self.engine.report() if judge else None
            events += self.patches.poll(now, report, self.last_step)
            self.patch_events = events
        return written

    def _remember(self, findings: list[Any]) -> None:
        for f in findings:
            self.findings.append(f)
            self.worst = worst([self.worst, f.severity])

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
