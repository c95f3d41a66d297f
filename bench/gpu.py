"""The GPU figures of hrm-train on a borrowed CUDA machine, in one command under 10 minutes.

    python bench/gpu.py --wheels wheels/ --out gpu.json         # on the GPU machine
    python bench/gpu.py --device cpu --dry-run --out dry.json    # check the script anywhere

Runs the Sudoku-Extreme-1k recipe (task=sudoku_extreme_1k: batch 768, the published model) for
`--steps` steps in bf16 with SDPA and compile=true, probe off and on, then a 2-process NCCL run
on the one GPU when NCCL allows it; prints it/s, the probe's overhead and peak memory, and
writes every figure to one JSON file. The data is a generated Sudoku stand-in (the speed does
not depend on the puzzles), or the real CSVs with `--sudoku-source DIR`.

The machine's image has torch, numpy, pandas, pyarrow, rich and scipy; what else hrm-train
needs travels as wheels, fetched beforehand on a machine with the package index:

    pip download hydra-core omegaconf pydantic watchdog adam-atan2-pytorch -d wheels/

`--wheels DIR` installs the missing ones from DIR (pip --no-index) before anything runs.
Exit 0 with the figures, 2 for a user error (no CUDA, a missing wheel), one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "hrm-doctor-gpu-bench/1"
NEEDED = {  # import name -> distribution name
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "pydantic": "pydantic",
    "watchdog": "watchdog",
    "adam_atan2_pytorch": "adam-atan2-pytorch",
}
WARMUP_STEPS = 20
"""Steps left out of the timing (compilation, allocator warm-up)."""
GPU_RECIPE = ["task=sudoku_extreme_1k", "device=cuda", "forward_dtype=bfloat16", "compile=true"]
DRY_RECIPE = [  # a tiny model on 4x4 Sudoku: the same code path on a CPU in seconds
    "experiment=smoke", "device=cpu", "compile=false", "global_batch_size=32",
    "arch.hidden_size=32", "arch.num_heads=2",
]  # fmt: skip


class BenchError(Exception):
    """A problem the user can fix: printed as one line, exit 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/gpu.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-bench.json", help="the JSON file of figures")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per run")
    parser.add_argument("--wheels", help="directory of wheels for the missing dependencies")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="tiny model (with --device cpu)")
    parser.add_argument("--sudoku-source", help="Sudoku-Extreme CSV directory (train/test.csv)")
    parser.add_argument("--no-nccl", action="store_true", help="skip the 2-process run")
    parser.add_argument("--budget-s", type=float, default=570.0, help="stop launching runs after")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    return args


def install_missing(wheels: str | None) -> list[str]:
    """Install the missing dependencies from `wheels`; the names installed."""
    missing = [dist for mod, dist in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return []
    if wheels is None or not Path(wheels).is_dir():
        raise BenchError(
            f"missing {', '.join(missing)}; pass --wheels DIR with their wheels "
            f"(pip download {' '.join(NEEDED.values())} -d DIR)"
        )
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", wheels, *missing]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BenchError(f"pip install from {wheels} failed: {last}")
    return missing


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__}
    if device == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(
                "no CUDA device (torch.cuda.is_available() is False); "
                "`--device cpu --dry-run` checks the script on a CPU"
            )
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory,
                    gpus=torch.cuda.device_count(), cuda=torch.version.cuda)  # fmt: skip
    return info


def run_env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "8"}


def build_data(work: Path, args: argparse.Namespace) -> Path:
    out = work / "data"
    flags = ["--box-size", "2", "--train-size", "512", "--test-size", "32", "--num-aug", "0"]
    if not args.dry_run:
        flags = ["--train-size", "1000", "--test-size", "64", "--num-aug", "0"]
        if args.sudoku_source:
            flags = ["--source", args.sudoku_source, "--subsample-size", "1000", "--num-aug", "0"]
    cmd = [sys.executable, "-m", "hrm_core.data", "build", "sudoku", "--out", str(out), "--quiet"]
    done = subprocess.run(
        [*cmd, *flags], env=run_env(), capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise BenchError(f"data build failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return out


def timed_run(
    name: str, prefix: list[str], overrides: list[str], run_dir: Path, timeout_s: float
) -> dict[str, Any]:
    """One hrm-train run; its figures from the telemetry it wrote."""
    start = time.perf_counter()
    try:
        done = subprocess.run([*prefix, *overrides, f"run_dir={run_dir}"], env=run_env(),
                              capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip
        code, err = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = 124, f"timed out after {timeout_s:.0f} s {exc.stderr or ''}"
    record: dict[str, Any] = {"name": name, "returncode": code,
                              "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip
    if code:
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        record["error"] = lines[-1] if lines else f"exit {code}"
    record.update(figures(run_dir))
    return record


def figures(run_dir: Path) -> dict[str, Any]:
    """it/s over the steps after warm-up, samples/s and peak memory from the telemetry."""
    try:
        from hrm_doctor import RunReader

        frame = RunReader(run_dir).scalars()
    except Exception:  # no telemetry: the run failed before its first step
        return {"steps": 0}
    frame = frame[frame["rank"] == 0] if "rank" in frame else frame
    times = frame["sys/step_time_s"].dropna().tolist() if "sys/step_time_s" in frame else []
    timed = times[WARMUP_STEPS:] if len(times) > 2 * WARMUP_STEPS else times[len(times) // 2 :]
    out: dict[str, Any] = {"steps": len(times)}
    if timed:
        median = statistics.median(timed)
        out.update(step_time_s_median=median, it_per_s=1.0 / median, timed_steps=len(timed))
    if "sys/samples_per_s" in frame:
        out["samples_per_s_median"] = float(frame["sys/samples_per_s"].dropna().median())
    if "sys/mem_peak_bytes" in frame:
        out["peak_mem_bytes"] = float(frame["sys/mem_peak_bytes"].max())
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict[str, Any] = {"schema": SCHEMA, "started": time.time(), "runs": {}}
    try:
        report["installed"] = install_missing(args.wheels)
        report["machine"] = machine(args.device)
        with tempfile.TemporaryDirectory(prefix="hrm-gpu-bench-") as tmp:
            work = Path(tmp)
            data = build_data(work, args)
            recipe = DRY_RECIPE if args.dry_run else GPU_RECIPE
            steps = args.steps + WARMUP_STEPS
            common = [*recipe, f"data_path={data}", "data_build=null", f"max_steps={steps}",
                      "wandb.mode=disabled", "keep_last=1"]  # fmt: skip
            report["config"] = {"overrides": common, "warmup_steps": WARMUP_STEPS}
            train = [sys.executable, "-m", "hrm_core.pretrain"]
            plan = [("probe_off", train, ["probe.enabled=false"]),
                    ("probe_on", train, ["probe.enabled=true"])]  # fmt: skip
            if not (args.no_nccl or args.dry_run):
                torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2", "-m", "hrm_core.pretrain"]  # fmt: skip
                plan.append(("nccl_2proc_1gpu", torchrun, ["probe.enabled=true"]))
            for name, prefix, extra in plan:
                left = args.budget_s - (time.perf_counter() - started)
                if left < 30:
                    report["runs"][name] = {"name": name, "skipped": "out of time budget"}
                    continue
                run = timed_run(name, prefix, [*common, *extra], work / name, left)
                report["runs"][name] = run
                print(f"{name}: {json.dumps(run)}", flush=True)
    except BenchError as exc:
        print(f"bench/gpu.py: error: {exc}", file=sys.stderr)
        return 2
    off, on = report["runs"].get("probe_off", {}), report["runs"].get("probe_on", {})
    if off.get("step_time_s_median") and on.get("step_time_s_median"):
        report["probe_overhead"] = on["step_time_s_median"] / off["step_time_s_median"]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"it/s probe off {off.get('it_per_s', float('nan')):.2f}, probe on "
          f"{on.get('it_per_s', float('nan')):.2f}, overhead "
          f"{report.get('probe_overhead', float('nan')):.3f}, peak memory "
          f"{on.get('peak_mem_bytes', 0) / 2**30:.2f} GiB -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
