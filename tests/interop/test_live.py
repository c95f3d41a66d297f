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
        # Through wandb/latest-run (a link that moves to each new run) `into` is a root with
        # one directory per run; a TensorBoard logdir converts into `into` itself.
        run = (
            _wait_for(lambda: next(into.glob("offline-run-*"), None), 60, "the converted run")
            if kind == "wandb"
            else into
        )
        found = _wait_for(
            lambda: [f for f in _findings(run / "findings.jsonl") if f["category"] == "nonfinite"],
            60,
            "the nonfinite finding",
        )
        assert writer.poll() is None, "the writer must still be running"
        assert found[0]["first_step"] == BAD_STEP and found[0]["metric"] == "train/lm_loss"
        cursor = json.loads((run / "import.json").read_text())
        assert cursor["format"] == kind and cursor["last_step"] >= BAD_STEP
    finally:
        release.touch()
        writer.wait(timeout=60)
        if watch is not None:
            watch.terminate()
            watch.wait(timeout=30)


@pytest.mark.slow
def test_the_flush_interval_setting_reaches_the_reference_trainer(tmp_path):
    """docs/interop.md: the reference pretrain.py passes its own wandb.Settings; the environment
    variable still sets x_transaction_log_flush_interval (15 s by default), with no code change."""
    code = (
        "import glob, os, time, wandb\n"
        f"r = wandb.init(mode='offline', dir={str(tmp_path)!r}, project='p',"
        " settings=wandb.Settings(x_disable_stats=True))\n"
        "r.log({'train/lm_loss': 1.0}, step=0)\n"
        f"f = glob.glob({str(tmp_path / 'wandb' / 'latest-run' / '*.wandb')!r})[0]\n"
        "deadline = time.monotonic() + 5\n"
        "while os.path.getsize(f) <= 7 and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print(r.settings.x_transaction_log_flush_interval, os.path.getsize(f) > 7)\n"
        "r.finish()\n"
    )
    env = {**__import__("os").environ, "WANDB_SILENT": "true",
           "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": "0.5"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.stdout.split()[-2:] == ["0.5", "True"], out.stderr[-2000:]
