"""Helpers shared by the tests in tests/interop/ (imported by name: conftest modules are not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WRITERS = Path(__file__).with_name("writers.py")


BAD_STEP = 30


def write_foreign_run(kind: str, out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.Popen(
        [sys.executable, str(WRITERS), kind, str(out), str(steps), str(BAD_STEP), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _written(kind: str, out: Path, steps: int) -> Path:
    p = write_foreign_run(kind, out, steps)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()[-2000:]
    return out
