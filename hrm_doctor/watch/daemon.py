"""The daemon loop: discover runs, turn change sets into monitor updates, report. No rule logic.

Many runs at once (a sweep, a root of a thousand): every run is caught up in chunks from a
backlog, a few at a time per turn of the loop, and a run that has just written a step is served
first, so a fresh finding never waits behind the catch-up of the others. Runs that have ended
sleep (their rule state dropped) until they change.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_doctor.cluster.mounts import network_fs
from hrm_doctor.interop.follow import open_follower
from hrm_doctor.rundir import find_runs
from hrm_doctor.watch.lock import RunLocked
from hrm_doctor.watch.monitor import RunMonitor
from hrm_doctor.watch.patches import describe_patch
from hrm_doctor.watch.source import ALL, RESCAN, ChangeSource

# Every so often every run is polled even without events: catches file systems that send none
# (then the daemon switches to polling) and new runs whose directory events were missed.
_SAFETY_POLL_S = 10.0
# Backlog work per turn of the loop: enough for a few catch-up chunks, short enough that an
# event that arrives meanwhile is served within about this long.
_BACKLOG_BUDGET_S = 0.15


def release_freed_memory() -> None:
    """Give the heap's free pages back to the system after a catch-up (glibc keeps the peak of
    a burst of medium-sized arrays otherwise); a no-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Daemon:
    """Follow a run, or every run under a root, until `stop` is set.

    `on_finding(run_name, finding, now, run_dir)` is called for each newly written finding (alerts,
    patches). Locked runs (another daemon watches them) are skipped with a note; when the
    target is itself a locked run, `RunLocked` propagates.
    """

    def __init__(
        self,
        target: str | Path,
        rule_set: Any,
        *,
        console: Any,
        poll: bool = False,
        tick_s: float = 1.0,
        on_finding: Callable[[str, Any, float, Path], None] | None = None,
        patches: Callable[[Path], Any] | None = None,
        into: str | Path | None = None,
    ) -> None:
        self.target = Path(target)
        # A W&B run or TensorBoard logdir is converted as it grows (hrm_doctor.interop) into a
        # run directory, which is then watched like any run; its files change only when we
        # convert, so it is polled right after each conversion.
        self.follower = open_follower(self.target, into)
        if self.follower is not None:
            console.note(
                f"following {self.target} ({self.follower.kind}) into {self.follower.run_dir}"
            )
            self.target = self.follower.run_dir
            poll = True
        if not poll and (fstype := network_fs(self.target)) is not None:
            poll = True  # another node's writes send no file event here (a Slurm job's ranks)
            console.note(
                f"{self.target} is on {fstype}, a network file system whose writes from other "
                "nodes send no file events: polling instead"
            )
        self.rule_set = rule_set
        self.console = console
        self.source = ChangeSource(self.target, poll=poll, tick_s=tick_s)
        self.tick_s = tick_s
        self.on_finding = on_finding
        self.make_patches = patches
        self.monitors: dict[str, RunMonitor] = {}
        self._by_path: dict[Path, RunMonitor] = {}
        self._skipped: set[Path] = set()
        self._evented: dict[Path, float] = {}  # run -> monotonic time of its last file event
        self._backlog: deque[RunMonitor] = deque()  # runs still catching up, served in turn
        self._urgent: set[Path] = set()  # behind, but just wrote: served until caught up
        self._caught_up_at: float | None = None
        self._started_at = time.monotonic()
        self._last_tick = self._last_safety = time.monotonic()

    def _name(self, run: Path) -> str:
        try:
            rel = run.resolve().relative_to(self.target.resolve())
        except ValueError:
            return str(run)
        return str(rel) if str(rel) != "." else run.name

    def discover(self) -> None:
        if not self.target.exists():
            return
        for run in find_runs(self.target):
            run = run.resolve() if not run.is_absolute() else run
            if run in self._by_path or run in self._skipped:
                continue
            try:
                m = RunMonitor(
                    run,
                    self.rule_set,
                    patches=self.make_patches(run) if self.make_patches else None,
                )
            except RunLocked as exc:
                if run == self.target.resolve():
                    raise
                self._skipped.add(run)
                self.console.note(f"skipping: {exc}")
                continue
            self._by_path[run] = m
            self.monitors[self._name(run)] = m
            self._backlog.append(m)
            self._caught_up_at = None
            self.console.note(f"watching {self._name(run)}")

    def _report(self, m: RunMonitor, found: list[Any], now: float) -> None:
        name = self._name(m.run_dir)
        for f in found:
            self.console.finding(name, f)
            if self.on_finding is not None:
                self.on_finding(name, f, now, m.run_dir)
        for r in m.patch_events:
            self.console.note(describe_patch(name, r))
        m.patch_events = []

    def settle(self) -> int:
        """Evaluate what is there now as the end of the data (across-rank rules judge the steps
        they held back), write the findings, and return how many were new."""
        if self.follower is not None:
            self.follower.update(final=True)
        self.discover()
        now = time.time()
        total = 0
        for m in self.monitors.values():
            found = m.update(now, drain=True) + m.finish()
            self._report(m, found, now)
            total += len(found)
        self._backlog.clear()
        return total

    def once(self) -> int:
        """`watch --once`: settle what is there now, then close."""
        try:
            return self.settle()
        finally:
            self.close()

    def close(self) -> None:
        for m in self._by_path.values():
            m.close()
        if self.follower is not None:
            self.follower.close()
            self.follower = None

    def run(self, stop: threading.Event, after_turn: Callable[[], bool] | None = None) -> None:
        """Follow until `stop` is set, or until `after_turn()` (called after each change set or
        tick: the supervisor's hook) returns True."""
        self.console.start()
        try:
            for changed in self.source.changes(stop, busy=lambda: bool(self._backlog)):
                self.turn(changed)
                if after_turn is not None and after_turn():
                    break
        finally:
            self.source.close()
            self.console.stop()
            self.close()

    def turn(self, changed: set[Path]) -> None:
        """One turn of the loop: the runs in `changed` (or every run) read, ticks, safety polls."""
        if self.follower is not None:
            self.follower.update()
            if self.follower.new_runs:  # W&B's latest-run moved to a new run
                self.follower.new_runs = False
                self.discover()
        now = time.time()
        mono = time.monotonic()
        if RESCAN in changed:
            self.discover()
        if ALL in changed:
            targets = list(self._by_path.values())
        else:
            targets = []
            for run in changed - {RESCAN}:
                run = run.resolve()
                if run not in self._by_path and run not in self._skipped:
                    self.discover()
                if run in self._by_path:
                    targets.append(self._by_path[run])
        for m in targets:
            self._evented[m.run_dir] = mono
            if m.behind:  # new data first: its catch-up goes to the front of the backlog
                self._prioritise(m)
                continue
            self._report(m, m.update(now), now)
            if m.behind:  # it woke up (asleep, then changed): catch it up first
                self._prioritise(m)
        self._work_backlog(now)
        if mono - self._last_safety >= _SAFETY_POLL_S and not self.source.polling:
            self._last_safety = mono
            self.discover()
            for m in self._by_path.values():
                if m.behind or m.asleep:
                    continue
                before = m.last_step
                found = m.update(now)
                self._report(m, found, now)
                quiet = mono - self._evented.get(m.run_dir, 0.0) > _SAFETY_POLL_S
                if m.last_step != before and before is not None and quiet:
                    self.console.note("file events are not arriving: polling instead")
                    self.source.switch_to_polling()
                    break
        if mono - self._last_tick >= self.tick_s:
            self._last_tick = mono
            for m in self._by_path.values():
                if m.behind or m.asleep:
                    continue
                self._report(m, m.tick(now), now)
                m.sleep_if_ended(now)
        self.console.refresh(self.monitors)

    def _prioritise(self, m: RunMonitor) -> None:
        with contextlib.suppress(ValueError):
            self._backlog.remove(m)
        self._backlog.appendleft(m)
        self._urgent.add(m.run_dir)
        self._caught_up_at = None

    def _work_backlog(self, now: float) -> None:
        """Catch-up chunks for at most `_BACKLOG_BUDGET_S`: the run at the front to its end,
        then the next (one run's catch-up in flight at a time keeps memory flat; a run that
        has just written goes to the front)."""
        deadline = time.monotonic() + _BACKLOG_BUDGET_S
        while self._backlog and time.monotonic() < deadline:
            m = self._backlog.popleft()
            self._report(m, m.update(now), now)
            if m.behind:
                self._backlog.appendleft(m)
            else:
                self._urgent.discard(m.run_dir)
        if not self._backlog and self._caught_up_at is None and self._by_path:
            self._caught_up_at = time.monotonic()
            self.console.note(
                f"caught up with {len(self._by_path)} run(s) in "
                f"{self._caught_up_at - self._started_at:.1f} s"
            )
            release_freed_memory()
