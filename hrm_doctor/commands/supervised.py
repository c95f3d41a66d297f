"""What `run` and `tune` share: the training command after `--`, and a stoppable main loop
(SIGTERM and Ctrl-C set the stop event; a command that cannot start is one line, exit 2)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from hrm_doctor.errors import UserError


def training_command(words: list[str], verb: str) -> list[str]:
    """The command after `--`; a UserError naming the verb's usage when there is none."""
    command = list(words)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UserError(f"no training command: use `hrm-doctor {verb} [...] -- hrm-train ...`")
    return command


def run_until_stopped(command: list[str], body: Callable[[threading.Event], int]) -> int:
    """`body(stop)` with SIGTERM wired to `stop`; 130 on Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return body(stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    except FileNotFoundError as exc:
        raise UserError(
            f"{command[0]}: cannot start the training command ({exc.strerror})"
        ) from None
