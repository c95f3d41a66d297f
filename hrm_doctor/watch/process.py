"""`TrainerProcess`: a training command the doctor launched, in its own process group, and how
it is stopped: a stop request through the control channel, then SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from hrm_doctor.control import write_stop_request
from hrm_doctor.rundir import is_run_dir


class TrainerProcess:
    """One launch of a training command (torchrun and its workers share the process group)."""

    def __init__(self, command: list[str], *, log: IO[bytes] | None = None) -> None:
        self.command = list(command)
        kw = {"stdout": log, "stderr": subprocess.STDOUT} if log is not None else {}
        self.proc = subprocess.Popen(self.command, start_new_session=True, **kw)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def exit_reason(self) -> str:
        return f"exited with {self.proc.poll()}"

    def attributes(self) -> dict[str, Any]:
        """What a trial records about its launch: nothing more for a local process."""
        return {}

    def ask_to_stop(
        self, grace_s: float, request_in: Path | None, finding_id: str | None
    ) -> int | None:
        """The gentle part of a stop: the exit code if the trainer has ended, or ends within
        `grace_s` of a stop request written into `request_in` (a run directory); else None."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        if request_in is not None and is_run_dir(request_in):
            write_stop_request(request_in, f"doctor-stop-{int(time.time() * 1000)}", finding_id)
            try:
                return self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        return None

    def stop(
        self,
        grace_s: float,
        *,
        request_in: Path | None = None,
        finding_id: str | None = None,
    ) -> int:
        """Stop the trainer and return its exit code. With `request_in` (a run directory), first
        ask it to stop at its next step boundary (it saves a checkpoint and exits 0), then
        SIGTERM the group, then SIGKILL it, each after `grace_s` seconds."""
        code = self.ask_to_stop(grace_s, request_in, finding_id)
        if code is not None:
            return code
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
                return self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return self.proc.wait()
        return self.proc.wait()
