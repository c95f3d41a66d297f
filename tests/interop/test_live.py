"""`hrm-doctor watch SRC` on a W&B run / TensorBoard logdir that is still being written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interop_helpers import BAD_STEP, write_foreign_run


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _findings(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wandb", "tensorboard"])
def test_watch_follows_a_foreign_run_while_it_trains(kind, tmp_path):
    release = tmp_path / "release"
    out = tmp_path / "src"
    writer = write_foreign_run(kind, out, 60, "0.02", str(release))
    src = out / "wandb" / "latest-run" if kind == "wandb" else out
    into = tmp_path / "converted"
    watch = None
    try:
        _wait_for(lambda: src.exists(), 60, f"{src} to appear")
        watch = subprocess.Popen(
            [sys.executable, "-m", "hrm_doctor", "watch", str(src), "--plain"],
            env={**__import__("os").environ, "HRM_DOCTOR_IMPORT_INTO": str(into)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        found = _wait_for(
            lambda: [f for f in _findings(into / "findings.jsonl") if f["category"] == "nonfinite"],
            60,
            "the nonfinite finding",
        )
        assert writer.poll() is None, "the writer must still be running"
        assert found[0]["first_step"] == BAD_STEP and found[0]["metric"] == "train/lm_loss"
        cursor = json.loads((into / "import.json").read_text())
        assert cursor["format"] == kind and cursor["last_step"] >= BAD_STEP
    finally:
        release.touch()
        writer.wait(timeout=60)
        if watch is not None:
            watch.terminate()
            watch.wait(timeout=30)
