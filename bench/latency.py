"""Detection latency and idle cost of `hrm-doctor watch` (a real daemon process).

1. Step logged and flushed -> finding in findings.jsonl (median of N runs; goal <= 0.25 s).
2. The same without an explicit flush (the writer's own timer; goal <= 1 s).
3. Idle CPU of one daemon watching 100 finished runs (goal < 2 % of a core).
Usage: python bench/latency.py [--trials 10] [--idle-runs 100] [--idle-seconds 20]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hrm_doctor import RunWriter

BIN = Path(sys.executable).parent / "hrm-doctor"


def _healthy(w: RunWriter, n: int) -> None:
    for i in range(n):
        w.log({"train/lm_loss": 2.0 - 0.001 * i, "grad/norm": 1.0 + 0.01 * (i % 7)}, step=i)


def _wait_finding(run: Path, t0: float, timeout_s: float = 30.0) -> float:
    path = run / "findings.jsonl"
    while time.monotonic() - t0 < timeout_s:
        try:
            if b"nonfinite" in path.read_bytes():
                return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    return math.inf


def latency(root: Path, trials: int, flush: bool) -> list[float]:
    proc = subprocess.Popen([str(BIN), "watch", str(root), "--plain"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # let the daemon start (imports) before timing anything
        out = []
        for t in range(trials):
            run = root / f"{'flush' if flush else 'timer'}-{t}"
            w = RunWriter(run, config={"lr": 1e-4})
            _healthy(w, 200)
            w.flush()
            time.sleep(0.5)  # the daemon has caught up with the healthy part
            w.log({"train/lm_loss": math.nan, "grad/norm": 1.0}, step=200)
            if flush:
                w.flush()
            t0 = time.monotonic()
            out.append(_wait_finding(run, t0))
            w.close()
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def idle_cpu(root: Path, runs: int, seconds: float) -> float:
    for i in range(runs):
        with RunWriter(root / f"run{i:03d}") as w:
            _healthy(w, 100)
    proc = subprocess.Popen([str(BIN), "watch", str(root), "--plain"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(15.0)  # start-up: imports, the first read of every run
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_s() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        c0, t0 = cpu_s(), time.monotonic()
        time.sleep(seconds)
        return (cpu_s() - c0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--idle-runs", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hrm-latency-"))
    try:
        flushed = latency(root / "flushed", args.trials, flush=True)
        timer = latency(root / "timer", args.trials, flush=False)
        print(
            f"watch latency, step flushed -> finding: median {statistics.median(flushed) * 1e3:.1f} ms,"
            f" max {max(flushed) * 1e3:.1f} ms over {len(flushed)} runs (goal <= 250 ms)"
        )
        print(
            f"watch latency, no explicit flush:       median {statistics.median(timer) * 1e3:.1f} ms,"
            f" max {max(timer) * 1e3:.1f} ms over {len(timer)} runs (goal <= 1000 ms)"
        )
        cpu = idle_cpu(root / "idle", args.idle_runs, args.idle_seconds)
        print(
            f"idle daemon watching {args.idle_runs} runs: {cpu * 100:.2f} % of a core (goal < 2 %)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
