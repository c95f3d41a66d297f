"""A writer process for the crash tests: logs steps, flushes every few, reports flushed steps.

Usage: python writer_proc.py RUN_DIR RANK WORLD_SIZE [START_STEP] [RESUME]
Prints "flushed N" after each flush() returns: every step <= N must be readable after a kill.
"""

import sys
import time

import numpy as np

from hrm_doctor import RunWriter

run_dir, rank, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = int(sys.argv[4]) if len(sys.argv) > 4 else 0
resume = len(sys.argv) > 5
rng = np.random.default_rng(rank)
names = [f"m/{i}" for i in range(64)]
w = RunWriter(
    run_dir,
    config={"lr": 1e-4},
    rank=rank,
    world_size=world,
    resume_from_step=start if resume else None,
    flush_interval_s=0.01,
)
step = start
while True:
    metrics = dict(zip(names, rng.standard_normal(64).tolist()))
    metrics["step_value"] = float(step)
    if step % 7 == 0:
        metrics["eval/test/accuracy"] = 0.5
    if step % 5 == 0:
        metrics["act/halt_steps"] = rng.integers(1, 16, size=rng.integers(1, 50))
    w.log(metrics, step=step)
    if step % 13 == 0:
        w.flush()
        print(f"flushed {step}", flush=True)
    step += 1
    if step % 100 == 0:
        time.sleep(0.001)
