"""SIGTERM / SIGINT -> a clean stop at the next step boundary, with a checkpoint.

The handler only sets a flag; the trainer shares it with every rank at the step boundary (a
preemption signal may reach the ranks at different steps), so all stop after the same step.
A second SIGINT interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class StopSignal:
    """`code`: 0 while running; 143 after SIGTERM (the trainer then exits 0: a preemption is a
    clean stop), 130 after SIGINT (exits 130). Handlers are installed from the main thread only
    and put back by `restore`."""

    def __init__(self) -> None:
        self.code = 0
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.code == EXIT_CODES[signal.SIGINT]:
            raise KeyboardInterrupt
        self.code = EXIT_CODES[signal.Signals(signum)]

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
