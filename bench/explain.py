"""Rule-engine benchmark: `hrm-doctor explain` time and peak memory over 10k/100k/1M steps x 256
metrics with every built-in pack (linear in steps?), and detection delays per category on
synthetic runs with one pathology injected at a known step.

Runs are written through the public RunWriter (the 1M-step run tiles a 100k-step healthy run
ten times; the engine's cost does not depend on the values). Each explain runs in a fresh
process: wall seconds include interpreter start-up and imports; CPU seconds are the process's
own; peak memory is its max RSS; "read" is the number of steps explain reported. The engine
alone is then timed over the same sizes in memory, without the reader. Delays are measured
from the onset to the step at which the finding is made (when `watch` would write it) and to
its first step (when the condition began).

Usage: python bench/explain.py [--steps 10000 100000 1000000] [--metrics 256] [--seeds 5]
       [--repeat 3] [--skip-size] [--skip-delays]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrm_doctor import synth  # noqa: E402


def write_big_run(run_dir: Path, steps: int, metrics: int) -> None:
    """A healthy run of `steps` x `metrics` scalars through RunWriter (tiles of <= 100k steps)."""
    from hrm_doctor import RunWriter

    tile = min(steps, 100_000)
    base = synth.healthy_run(tile, seed=1, n_blocks=8, extra_metrics=max(0, metrics - 68))
    cols = base.metrics[:metrics]
    values = base.frame[cols].to_numpy(np.float64)
    logged = base.logged[:, : len(cols)]
    rows = [
        {c: v for c, v, ok in zip(cols, values[i].tolist(), logged[i].tolist()) if ok}
        for i in range(tile)
    ]
    with RunWriter(
        run_dir, config=base.config, rank=0, world_size=1, meta={"program": "bench"}
    ) as w:
        for step in range(steps):
            w.log(rows[step % tile], step=step)


def measure(run_dir: Path) -> dict:
    """Run explain on `run_dir` in a fresh process: wall and CPU seconds, peak RSS, steps read."""
    out_json = str(run_dir) + ".json"
    code = (
        "import json, resource, time; t = time.perf_counter();"
        "from hrm_doctor.cli import main;"
        f"rc = main(['explain', '--run', {str(run_dir)!r}, '--format', 'json', '--out', {out_json!r},"
        " '--fail-on', 'never']); dt = time.perf_counter() - t;"
        "ru = resource.getrusage(resource.RUSAGE_SELF);"
        f"steps = json.load(open({out_json!r}))['steps'];"
        "print(json.dumps({'rc': rc, 'steps': steps, 'inproc_s': dt, 'cpu_s': ru.ru_utime + ru.ru_stime,"
        " 'rss_mb': ru.ru_maxrss / 1024}))"
    )
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t
    return res


def bench_size(steps_list: list[int], metrics: int, repeat: int) -> None:
    print(f"explain, every built-in pack, {metrics} metrics, 1 rank (fresh process per run;")
    print(f"best of {repeat} for runs up to 100k steps: the machine may be shared)")
    print(
        f"{'steps':>9} {'read':>9} {'write s':>8} {'wall s':>7} {'in-proc s':>9} {'cpu s':>6} "
        f"{'peak MB':>8} {'s/100k read':>11}"
    )
    with tempfile.TemporaryDirectory(prefix="hrm-bench-explain-") as tmp:
        for steps in steps_list:
            run = Path(tmp) / f"run{steps}"
            t = time.perf_counter()
            # In a child process: Linux keeps a process's max RSS across fork+exec, so the
            # measuring children must come from a parent that never held a big run.
            subprocess.run(
                [sys.executable, __file__, "--write", str(run), str(steps), str(metrics)],
                check=True,
                cwd=ROOT,
            )
            write_s = time.perf_counter() - t
            tries = [measure(run) for _ in range(repeat if steps <= 100_000 else 1)]
            m = min(tries, key=lambda r: r["wall_s"])
            per = m["inproc_s"] / max(m["steps"], 1) * 100_000
            print(
                f"{steps:>9} {m['steps']:>9} {write_s:>8.1f} {m['wall_s']:>7.2f} "
                f"{m['inproc_s']:>9.2f} {m['cpu_s']:>6.2f} {m['rss_mb']:>8.0f} {per:>11.2f}",
                flush=True,
            )
            shutil.rmtree(run, ignore_errors=True)


def bench_engine(steps_list: list[int], metrics: int) -> None:
    """The engine alone over in-memory frames (no reading): its cost per step."""
    import pandas as pd

    from hrm_doctor.engine.engine import RuleEngine
    from hrm_doctor.engine.packs import load_rule_set

    rules = load_rule_set()
    tile = min(max(steps_list), 100_000)
    base = synth.healthy_run(tile, seed=1, n_blocks=8, extra_metrics=max(0, metrics - 68))
    cols = base.metrics[:metrics]
    values = base.frame[cols].to_numpy(np.float32)
    print(
        f"\nthe engine alone (RuleEngine.feed + finish on an in-memory frame), {len(cols)} metrics"
    )
    print(f"{'steps':>9} {'engine s':>9} {'s/100k steps':>12}")
    for steps in steps_list:
        reps = -(-steps // tile)
        frame = pd.DataFrame(np.tile(values, (reps, 1))[:steps], columns=cols)
        frame.insert(0, "rank", np.zeros(steps, np.int64))
        frame.insert(0, "step", np.arange(steps, dtype=np.int64))
        logged = np.tile(base.logged[:, : len(cols)], (reps, 1))[:steps]
        t = time.perf_counter()
        engine = RuleEngine(rules, base.config, base.meta)
        engine.feed(frame, logged)
        engine.finish()
        dt = time.perf_counter() - t
        print(f"{steps:>9} {dt:>9.2f} {dt / steps * 100_000:>12.2f}", flush=True)
        del frame, logged


def bench_delays(seeds: int, steps: int) -> None:
    from hrm_doctor.engine.engine import RuleEngine
    from hrm_doctor.engine.packs import load_rule_set

    rules = load_rule_set()
    print(
        f"\ndetection delay per category ({seeds} synthetic runs each, {steps} steps, onset at "
        "random steps 1500..3500; delay in steps from onset)"
    )
    print(
        f"{'pathology':<17} {'category':<13} {'found':>5} {'made: median':>12} {'max':>5} "
        f"{'first: median':>13} {'severity':<9} rule(s); other warnings"
    )
    healthy_bad = 0
    for p in synth.PATHOLOGIES:
        made, first, sevs, names, other = [], [], set(), set(), set()
        found = 0
        for s in range(seeds):
            ws = 4 if p == "straggler" else 1
            rng = np.random.default_rng(1000 + s)
            onset = int(rng.integers(1500, 3500))
            run = synth.inject(
                synth.healthy_run(steps, seed=900 + s, world_size=ws), p, onset, seed=s
            )
            engine = RuleEngine(rules, run.config, run.meta)
            emitted = engine.feed(run.frame, run.logged) + engine.finish()
            cat = synth.EXPECTED_CATEGORY[p]
            hits = [f for f in emitted if f.category == cat and f.first_step >= onset - 5]
            if hits:
                hit = min(hits, key=lambda f: (f.last_step, f.first_step))
                found += 1
                made.append(hit.last_step - onset)
                first.append(hit.first_step - onset)
                sevs.add(hit.severity)
                names.add(hit.rule)
            other |= {f.rule for f in emitted if f.category != cat and f.severity != "info"}
        med = statistics.median(made) if made else float("nan")
        fmed = statistics.median(first) if first else float("nan")
        print(
            f"{p:<17} {synth.EXPECTED_CATEGORY[p]:<13} {found:>2}/{seeds:<2} {med:>12.0f} "
            f"{max(made) if made else float('nan'):>5} {fmed:>13.0f} {'/'.join(sorted(sevs)):<9} "
            f"{', '.join(sorted(names))}" + (f"; {', '.join(sorted(other))}" if other else "")
        )
    for s in range(seeds * 4):
        run = synth.healthy_run(steps, seed=5000 + s, world_size=1 + (s % 3 == 0))
        engine = RuleEngine(rules, run.config, run.meta)
        emitted = engine.feed(run.frame, run.logged) + engine.finish()
        healthy_bad += any(f.severity != "info" for f in emitted)
    print(f"healthy runs with a warning or critical finding: {healthy_bad}/{seeds * 4}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--metrics", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--delay-steps", type=int, default=6000)
    ap.add_argument("--skip-size", action="store_true")
    ap.add_argument("--skip-delays", action="store_true")
    ap.add_argument("--write", nargs=3, metavar=("DIR", "STEPS", "METRICS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        write_big_run(Path(args.write[0]), int(args.write[1]), int(args.write[2]))
        return
    os.environ.setdefault("WANDB_MODE", "disabled")
    if not args.skip_size:
        bench_size(args.steps, args.metrics, args.repeat)
        bench_engine(args.steps, args.metrics)
    if not args.skip_delays:
        bench_delays(args.seeds, args.delay_steps)


if __name__ == "__main__":
    main()
