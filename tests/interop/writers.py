"""Foreign trainers for the interop tests: the reference HRM trainer's W&B names, or TensorBoard.

Run as a script (a subprocess, so wandb's service and torch stay out of the test process):
``python writers.py wandb|tensorboard OUT_DIR STEPS BAD_STEP [SLEEP_S] [RELEASE_FILE]``.
With RELEASE_FILE, the writer logs every step, then waits (at most 60 s) for that file to exist
before finishing: the live test checks the diagnosis while the writer is still running.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

REFERENCE = (
    "train/accuracy",
    "train/exact_accuracy",
    "train/q_halt_accuracy",
    "train/steps",
    "train/count",
    "train/lm_loss",
    "train/q_halt_loss",
    "train/q_continue_loss",
    "train/lr",
)
CONFIG = {"lr": 1e-4, "global_batch_size": 768, "arch": {"H_cycles": 2, "L_cycles": 2}}


def metrics(step: int, bad_step: int) -> dict[str, float]:
    m = {name: 0.5 + 0.01 * math.sin(step + i) for i, name in enumerate(REFERENCE)}
    m["train/lm_loss"] = float("nan") if step == bad_step else 2.0 / (1 + 0.01 * step)
    m["train/lr"] = 1e-4
    return m


def wait_for(release: Path | None) -> None:
    deadline = time.monotonic() + 60
    while release is not None and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def write_wandb(out: Path, steps: int, bad_step: int, sleep_s: float, release: Path | None):
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    import wandb

    run = wandb.init(
        mode="offline",
        dir=str(out),
        project="hrm-ref",
        config={**CONFIG, "note": "x" * 70_000},  # > 2 blocks: FIRST/MIDDLE/LAST records
        settings=wandb.Settings(x_transaction_log_flush_interval=0.2),
    )
    run.log({"num_params": 27_275_266}, step=0)
    for step in range(steps):
        run.log(metrics(step, bad_step), step=step)
        if step % 10 == 0:
            run.log({"all": {"accuracy": 0.1, "exact_accuracy": 0.0}}, step=step)
        if sleep_s:
            time.sleep(sleep_s)
    wait_for(release)
    run.finish()


def write_tensorboard(out: Path, steps: int, bad_step: int, sleep_s: float, release):
    import torch
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(out), flush_secs=1)
    for step in range(steps):
        for name, value in metrics(step, bad_step).items():
            w.add_scalar(name, value, step)
        if step % 10 == 0:
            w.add_histogram("grad/hist", torch.arange(10.0), step)
        if sleep_s:
            w.flush()
            time.sleep(sleep_s)
    w.flush()
    wait_for(release)
    w.close()


if __name__ == "__main__":
    kind, out, steps, bad = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sleep_s = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    release = Path(sys.argv[6]) if len(sys.argv) > 6 else None
    (write_wandb if kind == "wandb" else write_tensorboard)(out, steps, bad, sleep_s, release)
