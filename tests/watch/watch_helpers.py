"""Helpers shared by the tests in tests/watch/ (imported by name: conftest modules are not)."""

import json
import math
import sys
import time
from pathlib import Path

from hrm_doctor import RunWriter

BIN = Path(sys.executable).parent / "hrm-doctor"


def wait_for(predicate, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def findings(run: Path) -> list[dict]:
    path = run / "findings.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def healthy_steps(w: RunWriter, start: int, stop: int) -> None:
    for i in range(start, stop):
        w.log({"train/lm_loss": 2.0 - 0.001 * i, "grad/norm": 1.0}, step=i)


def nan_step(w: RunWriter, step: int) -> None:
    w.log({"train/lm_loss": math.nan, "grad/norm": 1.0}, step=step)
