"""Telemetry benchmark: RunWriter/RunReader against what a user would use instead, in one run.

Prints, for STEPS steps x METRICS float scalars (random data, the worst case for size):
writer microseconds per step (amortised: the `log` calls plus the final flush), bytes per value
on disk, full-read seconds (`RunReader.scalars()`), the cost of a `poll` with nothing new and
with one new step, and 64 ranks x 10,000 steps read per value against one rank; then the same
figures for JSONL + pandas and TensorBoard event files (SummaryWriter + EventAccumulator), and
the size an Arrow IPC stream needs when a slow run flushes one row per batch (why we frame our
own segments). Usage: python bench/telemetry.py [--steps 100000] [--metrics 256] [--tb-steps 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def make_rows(steps: int, metrics: int, seed: int = 0):
    """A pool of 1000 distinct per-step dicts (built before timing, like a trainer's own dict)."""
    names = [f"group{i % 16}/metric{i}" for i in range(metrics)]
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((1000, metrics)).astype(np.float32).astype(float).tolist()
    return names, [dict(zip(names, row, strict=True)) for row in pool]


def bench_ours(root: Path, steps: int, metrics: int) -> dict[str, float]:
    from hrm_doctor import RunReader, RunWriter

    run = root / "ours"
    _, pool = make_rows(steps, metrics)
    w = RunWriter(run)
    t0 = time.perf_counter()
    for i in range(steps):
        w.log(pool[i % 1000], step=i)
    w.close()
    write_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (run / "telemetry").iterdir())
    reads = []
    for _ in range(3):
        t0 = time.perf_counter()
        df = RunReader(run).scalars()
        reads.append(time.perf_counter() - t0)
    assert df.shape == (steps, metrics + 2)
    reader = RunReader(run)
    reader.poll()
    t0 = time.perf_counter()
    for _ in range(100):
        reader.poll()
    poll_idle_s = (time.perf_counter() - t0) / 100
    w = RunWriter(run, resume_from_step=steps)
    w.log(pool[0], step=steps)
    w.flush()
    t0 = time.perf_counter()
    new = reader.poll()
    poll_new_s = time.perf_counter() - t0
    w.close()
    assert len(new) == 1
    return {
        "write_us_per_step": 1e6 * write_s / steps,
        "bytes_per_value": size / (steps * metrics),
        "read_s": min(reads),
        "poll_idle_ms": 1e3 * poll_idle_s,
        "poll_one_new_ms": 1e3 * poll_new_s,
    }


def bench_ranks(root: Path, metrics: int, ranks: int = 64, steps: int = 10_000) -> dict[str, float]:
    """64 ranks x 10,000 steps against 1 rank x 640,000 steps: seconds per million values."""
    from hrm_doctor import RunReader, RunWriter

    _, pool = make_rows(steps, metrics)
    many = root / "ranks"
    for r in range(ranks):
        with RunWriter(many, rank=r, world_size=ranks) as w:
            for i in range(steps):
                w.log(pool[i % 1000], step=i)
    one = root / "one"
    with RunWriter(one) as w:
        for i in range(ranks * steps):
            w.log(pool[i % 1000], step=i)
    out = {}
    for name, run in (("64_ranks", many), ("1_rank", one)):
        best = min(_timed(lambda run=run: RunReader(run).scalars()) for _ in range(2))
        out[f"{name}_s_per_Mvalue"] = best / (ranks * steps * metrics / 1e6)
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_jsonl(root: Path, steps: int, metrics: int) -> dict[str, float]:
    import pandas as pd

    _, pool = make_rows(steps, metrics)
    path = root / "metrics.jsonl"
    t0 = time.perf_counter()
    with open(path, "w") as f:
        for i in range(steps):
            row = dict(pool[i % 1000])
            row["step"] = i
            f.write(json.dumps(row) + "\n")
            if i % 100 == 0:
                f.flush()
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = pd.read_json(path, lines=True)
    read_s = time.perf_counter() - t0
    assert len(df) == steps
    return {
        "write_us_per_step": 1e6 * write_s / steps,
        "bytes_per_value": path.stat().st_size / (steps * metrics),
        "read_s": read_s,
    }


def bench_tensorboard(root: Path, steps: int, metrics: int) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    names, pool = make_rows(steps, metrics)
    logdir = root / "tb"
    w = SummaryWriter(str(logdir))
    t0 = time.perf_counter()
    for i in range(steps):
        for k, v in pool[i % 1000].items():
            w.add_scalar(k, v, i)
    w.close()
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    n = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
    read_s = time.perf_counter() - t0
    assert n == steps * metrics
    return {
        "write_us_per_step": 1e6 * write_s / steps,
        "bytes_per_value": dir_bytes(logdir) / (steps * metrics),
        "read_s": read_s,
    }


def bench_arrow_one_row_batches(root: Path, metrics: int, steps: int = 2000) -> dict[str, float]:
    """Arrow IPC stream when each flush holds one row (a real run at ~1 step per flush)."""
    import pyarrow as pa

    names, pool = make_rows(steps, metrics)
    schema = pa.schema([("step", pa.int64())] + [(n, pa.float32()) for n in names])
    path = root / "one_row.arrows"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for i in range(steps):
            row = pool[i % 1000]
            arrays = [pa.array([i], pa.int64())] + [pa.array([row[n]], pa.float32()) for n in names]
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    return {"bytes_per_value": path.stat().st_size / (steps * metrics)}


def ours_one_row_frames(root: Path, metrics: int, steps: int = 2000) -> dict[str, float]:
    from hrm_doctor import RunWriter

    _, pool = make_rows(steps, metrics)
    run = root / "ours_one_row"
    with RunWriter(run) as w:
        for i in range(steps):
            w.log(pool[i % 1000], step=i)
            w.flush()
    size = sum(f.stat().st_size for f in (run / "telemetry").iterdir())
    return {"bytes_per_value": size / (steps * metrics)}


def bench_slow_run_read(root: Path, steps: int = 100_000, metrics: int = 10) -> float:
    """A run that flushes one row per frame (a real run at ~1 step per flush): full-read seconds."""
    from hrm_doctor import RunReader, RunWriter

    names = [f"m/{i}" for i in range(metrics)]
    run = root / "slow"
    with RunWriter(run) as w:
        for i in range(steps):
            w.log(dict.fromkeys(names, float(i)), step=i)
            w.flush()
    return min(_timed(lambda: RunReader(run).scalars()) for _ in range(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--metrics", type=int, default=256)
    ap.add_argument("--tb-steps", type=int, default=10_000, help="TensorBoard is slow: fewer steps")
    ap.add_argument("--skip-ranks", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hrm-bench-"))
    try:
        s, m = args.steps, args.metrics
        print(f"telemetry benchmark: {s:,} steps x {m} float scalars (random values)\n")
        ours = bench_ours(root, s, m)
        jsonl = bench_jsonl(root, s, m)
        tb = bench_tensorboard(root, args.tb_steps, m)
        print(f"{'':34}{'hrm-doctor':>12}{'JSONL+pandas':>14}{'TensorBoard*':>14}")
        for key, label in (
            ("write_us_per_step", "writer, us per step"),
            ("bytes_per_value", "bytes per value"),
        ):
            print(f"{label:34}{ours[key]:12.2f}{jsonl[key]:14.2f}{tb[key]:14.2f}")
        tb_read_scaled = tb["read_s"] * s / args.tb_steps
        print(
            f"{'full read, s':34}{ours['read_s']:12.3f}{jsonl['read_s']:14.2f}{tb_read_scaled:14.1f}"
        )
        print(
            f"\nratios (other / ours): writer JSONL {jsonl['write_us_per_step'] / ours['write_us_per_step']:.1f}x,"
            f" TensorBoard {tb['write_us_per_step'] / ours['write_us_per_step']:.0f}x;"
            f" size JSONL {jsonl['bytes_per_value'] / ours['bytes_per_value']:.1f}x,"
            f" TensorBoard {tb['bytes_per_value'] / ours['bytes_per_value']:.1f}x;"
            f" read JSONL {jsonl['read_s'] / ours['read_s']:.0f}x, TensorBoard {tb_read_scaled / ours['read_s']:.0f}x"
        )
        print(
            f"* TensorBoard measured at {args.tb_steps:,} steps; its full read scaled linearly to {s:,}"
        )
        print(
            f"\npoll with nothing new: {ours['poll_idle_ms']:.3f} ms; poll of one new step after {s:,}: {ours['poll_one_new_ms']:.2f} ms"
        )
        arrow = bench_arrow_one_row_batches(root, m)
        mine = ours_one_row_frames(root, m)
        print(
            f"one row per flush (a slow real run): hrm-doctor frames {mine['bytes_per_value']:.2f} B/value,"
            f" Arrow IPC stream {arrow['bytes_per_value']:.2f} B/value"
        )
        slow = bench_slow_run_read(root)
        print(f"one row per frame, 100,000 steps x 10 metrics: full read {slow:.2f} s")
        if not args.skip_ranks:
            r = bench_ranks(root, m)
            print(
                f"64 ranks x 10,000 steps: {r['64_ranks_s_per_Mvalue']:.4f} s per million values;"
                f" 1 rank x 640,000 steps: {r['1_rank_s_per_Mvalue']:.4f}"
                f" (ratio {r['64_ranks_s_per_Mvalue'] / r['1_rank_s_per_Mvalue']:.2f})"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "disabled")
    main()
