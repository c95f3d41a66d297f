"""Change sets for the daemon: which runs under a root have new data, from inotify or polling.

Like watchfiles, the watcher is a generator of change sets with a stop event and a tick: an empty
set arrives every `tick_s` when nothing changed, so time-based rules (a stalled run) still fire.
`RESCAN` in a set means "directories appeared: look for new runs".
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hrm_doctor.rundir import CONFIG_FILE, META_FILE, TELEMETRY_DIR

RESCAN = Path("\0rescan")
ALL = Path("\0all")
_RUN_FILES = frozenset({META_FILE, CONFIG_FILE})


def run_dir_of(path: Path, root: Path) -> Path | None:
    """The run directory a changed path belongs to (its telemetry, meta or config), if any."""
    if path.parent.name == TELEMETRY_DIR:
        return path.parent.parent
    if path.name in _RUN_FILES or path.name == TELEMETRY_DIR:
        return path.parent
    return None


class ChangeSource:
    """Yield sets of changed run directories (or RESCAN/ALL markers); empty sets on each tick.

    With ``poll=True`` (or where inotify is not available) every tick of `poll_interval_s`
    yields ``{ALL}``: the daemon then polls every run, which costs a stat per segment.
    """

    def __init__(
        self,
        root: Path,
        *,
        poll: bool = False,
        tick_s: float = 1.0,
        poll_interval_s: float = 0.25,
    ) -> None:
        self.root = Path(root)
        self.polling = poll
        self.tick_s = tick_s
        self.poll_interval_s = poll_interval_s
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._observer = None

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            self.polling = True
            return
        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:  # runs in the observer thread
                if event.event_type in ("opened", "closed_no_write"):
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if not raw:
                        continue
                    p = Path(raw if isinstance(raw, str) else raw.decode())
                    if event.is_directory and event.event_type in ("created", "moved"):
                        source._queue.put(RESCAN)
                    run = run_dir_of(p, source.root)
                    if run is not None:
                        source._queue.put(run)

        observer = Observer()
        try:
            observer.schedule(Handler(), str(self.root), recursive=True)
            observer.start()
        except OSError:  # inotify watch limit, or a file system without events
            self.polling = True
            return
        self._observer = observer

    def changes(
        self, stop: threading.Event, busy: Callable[[], bool] = lambda: False
    ) -> Iterator[set[Path]]:
        """Change sets until `stop`; while `busy()` (the daemon has a backlog to read) the sets
        come without waiting, empty when nothing changed, so that the backlog moves on."""
        started = False
        last_poll = 0.0
        while not stop.is_set():
            if not started and self.root.exists():
                started = True
                if not self.polling:
                    self._start_observer()
                yield {RESCAN}
            if self.polling or not started:
                if busy() and started:
                    now = time.monotonic()
                    due = now - last_poll >= self.poll_interval_s
                    last_poll = now if due else last_poll
                    yield {ALL} if due else set()
                    continue
                if stop.wait(self.poll_interval_s if started else min(self.tick_s, 0.25)):
                    break
                last_poll = time.monotonic()
                yield {ALL} if started else set()
                continue
            try:
                first = self._queue.get(timeout=0 if busy() else self.tick_s)
            except queue.Empty:
                yield set()
                continue
            batch = {first}
            while True:
                try:
                    batch.add(self._queue.get_nowait())
                except queue.Empty:
                    break
            yield batch

    def switch_to_polling(self) -> None:
        """Events are not arriving (e.g. a network file system): poll from now on."""
        self.polling = True
        self.close()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
