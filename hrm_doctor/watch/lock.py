"""One daemon per run: an advisory `flock` on `RUN/.hrm-doctor.lock`, released when the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hrm_doctor.rundir import LOCK_FILE


class RunLocked(Exception):
    """Another process holds the run's daemon lock."""


class RunLock:
    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: another hrm-doctor daemon (pid {holder}) is already "
                "watching this run"
            ) from None
        pid = str(os.getpid()).encode()
        os.pwrite(fd, pid, 0)
        if os.fstat(fd).st_size > len(pid):  # (a truncate costs more than the write)
            os.ftruncate(fd, len(pid))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
