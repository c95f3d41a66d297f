"""`make demo`: the main job on an embedded default.

Until the trainer lands this writes a small synthetic two-rank run (a healthy warm-up, then a
gradient explosion) under runs/demo and prints `hrm-doctor info` of it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from hrm_doctor import RunWriter
from hrm_doctor.cli import main as cli_main


def write_synthetic_run(
    run_dir: Path, steps: int = 2000, world_size: int = 2, seed: int = 0
) -> Path:
    """A plausible HRM run: lm_loss decays, grad norm steady, then explodes at 80% of the run."""
    rng = np.random.default_rng(seed)
    onset = int(steps * 0.8)
    config = {"lr": 1e-4, "global_batch_size": 768, "arch": {"halt_max_steps": 16}}
    for rank in range(world_size):
        with RunWriter(
            run_dir, config=config, rank=rank, world_size=world_size, program="hrm-doctor demo"
        ) as w:
            for step in range(steps):
                grow = math.exp((step - onset) / 40) if step >= onset else 1.0
                w.log(
                    {
                        "train/lm_loss": 2.4 * math.exp(-step / 600)
                        + 0.3
                        + 0.02 * rng.standard_normal(),
                        "train/accuracy": min(0.99, 0.1 + step / steps),
                        "train/steps": 8 + rng.standard_normal(),
                        "train/lr": 1e-4 * min(1.0, step / 200),
                        "grad/norm": (1.0 + 0.1 * rng.standard_normal()) * grow,
                        "sys/step_time_s": 0.05 + 0.002 * rng.standard_normal(),
                        "act/halt_steps": rng.integers(1, 17, size=32),
                    },
                    step=step,
                )
    return run_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs", help="where to put the demo run (default: runs)")
    ap.add_argument("--no-browser", action="store_true", help="do not serve the dashboard")
    args = ap.parse_args(argv)
    run_dir = Path(args.root) / "demo"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    write_synthetic_run(run_dir)
    print(f"wrote a synthetic run to {run_dir}\n")
    return cli_main(["info", str(run_dir)])


if __name__ == "__main__":
    sys.exit(main())
