"""The daemon loop: discover runs, turn change sets into monitor updates, report. No rule logic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_doctor.interop.follow import open_follower
from hrm_doctor.rundir import find_runs
from hrm_doctor.watch.lock import RunLocked
from hrm_doctor.watch.monitor import RunMonitor
from hrm_doctor.watch.patches import describe_patch
from hrm_doctor.watch.source import ALL, RESCAN, ChangeSource

# Every so often every run is polled even without events: catches file systems that send none
# (then the daemon switches to polling) and new runs whose directory events were missed.
_SAFETY_POLL_S = 10.0


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
            found = m.update(now) + m.finish()
            self._report(m, found, now)
            total += len(found)
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
            for changed in self.source.changes(stop):
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
            self._report(m, m.update(now), now)
        if mono - self._last_safety >= _SAFETY_POLL_S and not self.source.polling:
            self._last_safety = mono
            self.discover()
            for m in self._by_path.values():
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
                self._report(m, m.tick(now), now)
        self.console.refresh(self.monitors)
