"""Trainer benchmark: steps/s of the smoke model with the probe off and on, in one run, as a ratio
(goal <= 1.03, DESIGN "Numbers to reach"), and the peak memory of each.

    python bench/trainer.py [--steps 60] [--repeats 5] [--tier full] [--device cpu|cuda]

Step times: the real `hrm-train experiment=smoke` entry point, run in this process for short
runs that alternate probe off / probe on (so a machine that gets busier or quieter affects both
alike), read from the runs' own telemetry (sys/step_time_s) after a warm-up. The ratio is
reported on the median and on the 20th percentile of the pooled step times (the low percentile
is the less disturbed by other processes on a shared machine). Peak memory: one separate
process per setting (its peak RSS on CPU; peak CUDA allocation on a GPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WARMUP_STEPS = 10


def overrides(run_dir: Path, data: Path, steps: int, probe: bool, args) -> list[str]:
    return [
        "experiment=smoke",
        f"run_dir={run_dir}",
        f"data_path={data}",
        f"max_steps={steps}",
        "resume=never",
        f"probe.enabled={str(probe).lower()}",
        f"probe.tier={args.tier}",
        f"device={args.device}",
        *(["forward_dtype=auto"] if args.device != "cpu" else []),
    ]


def step_times(run_dir: Path) -> np.ndarray:
    from hrm_doctor import RunReader

    df = RunReader(run_dir).scalars(["sys/step_time_s"])
    return df[df["step"] > WARMUP_STEPS]["sys/step_time_s"].to_numpy()


def peak_memory(run_dir: Path) -> float:
    from hrm_doctor import RunReader

    return float(RunReader(run_dir).scalars(["sys/mem_peak_bytes"])["sys/mem_peak_bytes"].max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per run (default 60)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per setting (default 5)")
    parser.add_argument("--tier", default="full", choices=["cheap", "standard", "full"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS (default 1)")
    parser.add_argument("--data", type=Path, help="smoke data dir (default: built in a temp dir)")
    args = parser.parse_args(argv)
    os.environ["WANDB_MODE"] = "disabled"
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import contextlib
    import io

    from hrm_core.pretrain import main as hrm_train

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        root = Path(tmp)
        data = args.data or root / "data"
        times: dict[bool, list[np.ndarray]] = {False: [], True: []}
        for rep in range(args.repeats):
            for probe in (False, True) if rep % 2 == 0 else (True, False):
                run_dir = root / f"probe-{'on' if probe else 'off'}-{rep}"
                with contextlib.redirect_stdout(io.StringIO()):
                    code = hrm_train(overrides(run_dir, data, args.steps, probe, args))
                if code != 0:
                    raise SystemExit(f"bench: hrm-train failed ({code}) in {run_dir}")
                times[probe].append(step_times(run_dir))
                print(
                    f"  {run_dir.name}: median {np.median(times[probe][-1]) * 1e3:.1f} ms/step",
                    file=sys.stderr,
                )
        memory = {}
        for probe in (False, True):  # a process each, so each peak is its own
            run_dir = root / f"memory-{'on' if probe else 'off'}"
            cmd = [sys.executable, "-m", "hrm_core.pretrain"]
            cmd += overrides(run_dir, data, 2 * WARMUP_STEPS, probe, args)
            subprocess.run(cmd, capture_output=True, check=True)
            memory[probe] = peak_memory(run_dir)

    off, on = np.concatenate(times[False]), np.concatenate(times[True])
    print(
        f"trainer bench: smoke model ({args.device}, {args.threads} thread(s)), "
        f"{args.repeats} x {args.steps} steps per setting, alternating"
    )
    for label, t, probe in (("probe off", off, False), (f"probe on ({args.tier})", on, True)):
        print(
            f"  {label:<17} {1 / np.median(t):7.2f} steps/s  median {np.median(t) * 1e3:6.1f} "
            f"ms/step  p20 {np.percentile(t, 20) * 1e3:6.1f} ms/step  "
            f"peak memory {memory[probe] / 2**20:.0f} MiB"
        )
    print(
        f"  step time ratio on/off: median {np.median(on) / np.median(off):.3f}, "
        f"p20 {np.percentile(on, 20) / np.percentile(off, 20):.3f}  (goal <= 1.03)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
