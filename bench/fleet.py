"""Fleet benchmark: one `hrm-doctor watch ROOT` over N finished runs x S steps x ~58 metrics.

Prints, measured from outside through /proc like a user's `top` would (the daemon is a real
`hrm-doctor watch` process): the time to catch up with the backlog (the daemon says when),
its peak and final RSS, its CPU while idle, the latency from a non-finite step written to one
run while the backlog is still being read to its finding in findings.jsonl, and the same once
caught up. The runs are one synthetic healthy run (hrm_doctor.synth) written through RunWriter
and copied N times; the old whole-history daemon of an earlier checkout can be measured the same
way with --python and --pythonpath (its numbers are the "today" figures of issue 15).

Usage: python bench/fleet.py [--runs 100] [--steps 20000] [--keep DIR]
       [--python PY --pythonpath DIR]   (measure another checkout's daemon on the same runs)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def write_template(run: Path, steps: int) -> None:
    from hrm_doctor import RunWriter, synth

    base = synth.healthy_run(steps, seed=1, n_blocks=4)
    cols = base.metrics
    values = base.frame[cols].to_numpy(float)
    logged = base.logged[:, : len(cols)]
    with RunWriter(run, config=base.config, rank=0, world_size=1, program="bench") as w:
        for i in range(steps):
            w.log({c: v for c, v, ok in zip(cols, values[i].tolist(), logged[i]) if ok}, step=i)


def make_root(root: Path, runs: int, steps: int) -> None:
    template = root / "run0000"
    write_template(template, steps)
    for i in range(1, runs):
        shutil.copytree(template, root / f"run{i:04d}")


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS
    return {"rss_mb": kb["VmRSS"] / 1024, "peak_mb": kb["VmHWM"] / 1024, "cpu_s": cpu_s}


def append_nonfinite(run: Path, step: int) -> float:
    """A resumed writer session logs one NaN loss at `step`; returns when it was flushed."""
    from hrm_doctor import RunWriter

    with RunWriter(run, config={}, rank=0, world_size=1, resume_from_step=step) as w:
        w.log({"train/lm_loss": math.nan, "nonfinite/count": 1.0}, step=step)
        w.flush()
        t = time.monotonic()
    return t


def wait_finding(run: Path, step: int, timeout_s: float = 120.0) -> float | None:
    path = run / "findings.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            for line in path.read_text().splitlines():
                f = json.loads(line)
                if f.get("category") == "nonfinite" and f.get("first_step") == step:
                    return time.monotonic()
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument(
        "--keep", metavar="DIR", help="write the root here and keep it (reused if there)"
    )
    ap.add_argument("--python", default=sys.executable, help="the Python of the daemon to measure")
    ap.add_argument("--pythonpath", default=str(ROOT), help="the checkout of that daemon")
    ap.add_argument("--idle-s", type=float, default=10.0)
    args = ap.parse_args()

    tmp = None
    if args.keep:
        root = Path(args.keep)
    else:
        tmp = tempfile.mkdtemp(prefix="hrm-bench-fleet-")
        root = Path(tmp) / "root"
    try:
        if not (root / f"run{args.runs - 1:04d}").exists():
            root.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            make_root(root, args.runs, args.steps)
            print(f"wrote {args.runs} runs x {args.steps} steps in {time.perf_counter() - t:.1f} s")
        first = sorted(root.glob("run*"))[0]
        for run in sorted(root.glob("run*")):  # as written: a fresh daemon, nothing known
            for p in (run / "findings.jsonl", run / "summary.json"):
                p.unlink(missing_ok=True)
            for seg in (run / "telemetry").iterdir():  # the non-finite steps of a former bench
                if not (first / "telemetry" / seg.name).exists():
                    seg.unlink()
        size = sum(f.stat().st_size for f in root.rglob("*.hrmt"))
        print(f"root: {args.runs} runs x {args.steps} steps, {size / 2**20:.0f} MiB of telemetry")
        env = dict(
            os.environ, PYTHONPATH=args.pythonpath, WANDB_MODE="disabled", PYTHONUNBUFFERED="1"
        )
        log = open(Path(tmp or root) / "watch.log", "w")  # noqa: SIM115
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [args.python, "-m", "hrm_doctor", "watch", str(root), "--plain"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=args.pythonpath,
        )  # fmt: skip
        try:
            # 1. a non-finite step in one run while the backlog is being read
            time.sleep(1.0)
            victim = root / f"run{args.runs // 2:04d}"
            t_write = append_nonfinite(victim, args.steps)
            t_found = wait_finding(victim, args.steps)
            during = None if t_found is None else t_found - t_write
            # 2. the end of the catch-up (the daemon says so), peak memory
            caught = caught_cpu = None
            peak = 0.0
            last_cpu, last_t = proc_stats(proc.pid)["cpu_s"], time.monotonic()
            while caught is None and proc.poll() is None and time.monotonic() - t0 < 1800:
                st = proc_stats(proc.pid)
                peak = max(peak, st["rss_mb"])
                if "caught up with" in Path(log.name).read_text():
                    caught = time.monotonic() - t0
                    caught_cpu = st["cpu_s"]
                    break
                now = time.monotonic()
                if now - last_t >= 1.0:  # a daemon that does not say: its CPU falls idle
                    if now - t0 > 3 and (st["cpu_s"] - last_cpu) / (now - last_t) < 0.03:
                        caught, caught_cpu = last_t - t0, last_cpu
                        break
                    last_cpu, last_t = st["cpu_s"], now
                time.sleep(0.1)
            # 3. idle CPU (after the first status checks and safety poll that follow a catch-up),
            # then a fresh non-finite step once caught up
            time.sleep(12.0)
            s0 = proc_stats(proc.pid)
            time.sleep(args.idle_s)
            s1 = proc_stats(proc.pid)
            idle = (s1["cpu_s"] - s0["cpu_s"]) / args.idle_s
            victim2 = root / f"run{args.runs // 3:04d}"
            t_write = append_nonfinite(victim2, args.steps)
            t_found = wait_finding(victim2, args.steps)
            after = None if t_found is None else t_found - t_write
            final = proc_stats(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()

        def fmt(x):
            return "not found" if x is None else f"{x:.3f} s"

        print(f"daemon: {args.pythonpath}")
        cpu = "" if caught_cpu is None else f", {caught_cpu:.1f} s of CPU"
        print(f"catch-up of the backlog: {fmt(caught)} (daemon start -> 'caught up'{cpu})")
        print(
            f"peak RSS: {max(peak, final['peak_mb']):.0f} MB; RSS after catch-up: {final['rss_mb']:.0f} MB"
        )
        print(f"idle CPU after catch-up: {idle * 100:.2f} % of one core")
        print(f"non-finite step -> finding, written during the catch-up: {fmt(during)}")
        print(f"non-finite step -> finding, once caught up: {fmt(after)}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
