"""What the daemon shows: a rich live table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

_STYLE = {"healthy": "green", "info": "cyan", "warning": "yellow", "critical": "bold red"}


class PlainConsole:
    """One line per event; for logs, CI and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def note(self, text: str) -> None:
        print(f"hrm-doctor: {text}", file=self.stream, flush=True)

    def finding(self, run: str, f: Any) -> None:
        print(
            f"[{f.severity}] {run} step {f.first_step} {f.rule} ({f.category}): {f.message}",
            file=self.stream,
            flush=True,
        )

    def refresh(self, monitors: dict) -> None:
        pass


class LiveConsole(PlainConsole):
    """A rich live table: runs, last step, steps/s, status, newest finding."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self._console = Console()
        self._live = Live(console=self._console, refresh_per_second=2, transient=False)
        self._last = 0.0

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def note(self, text: str) -> None:
        self._console.log(text)

    def finding(self, run: str, f: Any) -> None:
        style = _STYLE.get(f.severity, "")
        self._console.log(
            f"[{style}]{f.severity}[/{style}] {run} step {f.first_step} [bold]{f.rule}[/bold]: {f.message}"
        )

    def refresh(self, monitors: dict) -> None:
        now = time.monotonic()
        if now - self._last < 0.5:
            return
        self._last = now
        from rich.table import Table

        table = Table(title="hrm-doctor watch", expand=True)
        for col in ("run", "last step", "steps/s", "status", "health", "newest finding"):
            table.add_column(col, no_wrap=col != "newest finding")
        for name, m in sorted(monitors.items()):
            style = _STYLE.get(m.worst, "")
            newest = m.findings[-1] if m.findings else None
            table.add_row(
                name,
                "-" if m.last_step is None else str(m.last_step),
                f"{m.steps_per_s:.2f}" if m.steps_per_s else "-",
                m.status,
                f"[{style}]{m.worst}[/{style}]",
                f"{newest.rule}@{newest.first_step}: {newest.message}" if newest else "",
            )
        self._live.update(table)
