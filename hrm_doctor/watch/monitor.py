"""`RunMonitor`: one run followed by the daemon: new rows -> the engine -> findings written once.

A run is first caught up in chunks (`RunReader.iter_scalars`: memory bounded whatever its
length; one chunk per `update`, so that the daemon can serve other runs in between), then
followed by `poll`. A run that has ended and gone quiet is put to sleep: its rule state is
dropped (a few hundred KB per idle run stay: the findings' ids, the figures of its summary)
and rebuilt from the start, with the ids already written as the cursor, when it changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrm_doctor.rundir import read_findings
from hrm_doctor.severity import worst
from hrm_doctor.watch.findings_log import FindingsLog
from hrm_doctor.watch.lock import RunLock
from hrm_doctor.watch.recovery import RecentHistory
from hrm_doctor.watch.summary import SummaryKeeper


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
# Rows per catch-up chunk: large enough that the per-chunk cost is small, small enough that a
# chunk of a wide run is a few tens of MB and a fresh event waits for at most one chunk.
CATCHUP_ROWS = 16384
_ENDED = ("finished", "failed", "crashed")
# An ended run sleeps after this long without new data: waking means reading it again, so a
# run that may still be resumed keeps its state a while (an awake run costs about 1 MB).
SLEEP_AFTER_S = 600.0


class RunMonitor:
    """Follow one run: poll only new rows, feed one `RuleEngine`, append its new findings.

    On start (or after a daemon restart) the engine is fed the whole run, chunk by chunk, and
    the ids already in findings.jsonl are passed as known: nothing is written twice and nothing
    is missed. After a resume or rollback of the trainer, the engine is rebuilt over the new
    timeline the same way.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        rule_set: Any,
        *,
        lock: bool = True,
        patches: Any = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.rule_set = rule_set
        self._lock = RunLock(self.run_dir) if lock else None
        if self._lock is not None:
            self._lock.acquire()
        self.log = FindingsLog(self.run_dir)
        self.summary = SummaryKeeper(self.run_dir)
        # the newest steps of the loss and accuracy: what a patch's recovery is judged by
        self.history = RecentHistory() if patches is not None else None
        self.reader: Any = None
        self._catchup: Iterator[Any] | None = None
        self.engine = None
        self.asleep = False
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

    @property
    def behind(self) -> bool:
        """Still catching up with what the run wrote before (more chunks to read)."""
        return self._catchup is not None or (self.reader is None and not self.asleep)

    def _start_catchup(self) -> None:
        from hrm_doctor.telemetry import RunReader

        self.reader = RunReader(self.run_dir, keep_history=False)
        self._catchup = self.reader.iter_scalars(
            chunk_rows=CATCHUP_ROWS, with_mask=True, with_time=True
        )
        self.engine = None
        self.summary.reset()
        if self.history is not None:
            self.history.reset()

    def update(self, now: float | None = None, *, drain: bool = False) -> list[Any]:
        """Read what is new (one catch-up chunk, or everything new once caught up; with `drain`
        the whole catch-up), evaluate it, write and return the new findings (may be empty)."""
        now = time.time() if now is None else now
        if self.asleep:
            if not self._changed_since_sleep():
                return []
            self.asleep = False  # resumed, or more data: rebuild from the start (ids known)
        if self.reader is None:
            self._start_catchup()
        new: list[Any] = []
        while self._catchup is not None:
            chunk = next(self._catchup, None)
            if chunk is None:
                self._catchup = None
                break
            new += self._feed(*chunk, now)
            if not drain:
                break
        if self._catchup is None and self.reader.changed():
            df, logged = self.reader.poll(with_mask=True, with_time=True)
            if df.attrs.get("rollback") and self.engine is not None:
                # the trainer resumed or was rolled back: judge the new timeline from scratch
                self._start_catchup()
                return self._write(new) + self.update(now, drain=drain)
            new += self._feed(df, logged, now)
        new += self.tick(now, _from_update=True)
        written = self._write(new)
        if not self.behind:  # a catch-up writes its summary when it is done
            self.summary.maybe_write(self, now)
        return written

    def _feed(self, df, logged, now: float) -> list[Any]:
        if not len(df):
            return []
        if self.engine is None:
            self.engine = self._new_engine()
        found = self.engine.feed(df, logged, now=now)
        self._note_progress(df)
        self.summary.add(df)
        if self.history is not None:
            self.history.add(df)
        self.status = "running"
        self._status_checked = now
        return found

    def sleep_if_ended(self, now: float) -> bool:
        """Drop the rule state of a run that has ended and is caught up (its across-rank rules
        judge their last steps first). True when it is asleep."""
        if self.asleep:
            return True
        if self.behind or self.engine is None or self.status not in _ENDED:
            return False
        if now - self._status_checked < SLEEP_AFTER_S:
            return False
        if self.patches is not None and self.patches.awaiting_effect():
            return False
        self.finish()
        self.summary.touch()
        self.summary.maybe_write(self, now, force=True)
        self._sleep_stamp = self._stamp()
        self.engine, self.reader, self._catchup = None, None, None
        self.asleep = True
        return True

    def _stamp(self) -> tuple:
        from hrm_doctor.rundir import TELEMETRY_DIR

        d = self.run_dir / TELEMETRY_DIR
        try:
            return tuple(sorted((e.name, e.stat().st_size) for e in os.scandir(d)))
        except OSError:
            return ()

    def _changed_since_sleep(self) -> bool:
        return self._stamp() != getattr(self, "_sleep_stamp", ())

    def tick(self, now: float, *, _from_update: bool = False) -> list[Any]:
        """Time-based rules only (no I/O unless the run has been silent for a while)."""
        if self.engine is None or self.reader is None or self.status in _ENDED:
            return []  # an ended run has no clock to watch until new data arrives
        silent = now - (self.last_data_time or now)
        if silent > _STATUS_EVERY_S and now - self._status_checked > _STATUS_EVERY_S:
            status = self.reader.status
            if status != self.status:
                self.summary.touch()
            self.status = status
            self._status_checked = now
        found = self.engine.tick(now, last_data_time=self.last_data_time, status=self.status)
        return found if _from_update else self._write(found)

    def finish(self) -> list[Any]:
        """End of data (``--once``): judge what across-rank rules still hold back."""
        if self.engine is None:
            return []
        return self._write(self.engine.finish())

    def _note_progress(self, df) -> None:
        step = int(df["step"].to_numpy().max())
        t = float(np.nanmax(df["time"].to_numpy()))
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
        if written:
            self.summary.touch()
        self._remember(written)
        if self.patches is not None:
            now = time.time()
            events = []
            for f in written:
                events += self.patches.on_finding(f, now)
            # the engine's report only matters while an applied patch awaits its effect check
            judge = self.engine is not None and self.patches.awaiting_effect()
            report = self.engine.report() if judge else None
            events += self.patches.poll(now, report, self.last_step, self.history)
            self.patch_events = events
        return written

    def _remember(self, findings: list[Any]) -> None:
        for f in findings:
            self.findings.append(f)
            self.worst = worst([self.worst, f.severity])

    def close(self) -> None:
        if not self.asleep and self.reader is not None:
            self.summary.maybe_write(self, time.time(), force=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
