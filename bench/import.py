"""Import speed: STEPS x 10 metrics from W&B offline and TensorBoard, against what users use.

W&B: `hrm-doctor import wandb` vs `wandb leet inspect --json` (the CLI that reads an offline
.wandb log; parsing its JSON lines into a table included). TensorBoard: `hrm-doctor import
tensorboard` vs EventAccumulator (tensorboard's own) and tbparse (when installed).

    .venv/bin/python bench/import.py [--steps 100000] [--only wandb|tensorboard]

Generating the inputs dominates (wandb offline ~0.5 ms/step; SummaryWriter ~30 us/value): the
generation time is printed but is not part of any ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRICS = [f"train/m{i}" for i in range(9)] + ["train/lm_loss"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def gen_wandb(root: Path, steps: int) -> Path:
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    code = (
        "import wandb,sys\n"
        f"r=wandb.init(mode='offline',dir={str(root)!r},project='bench')\n"
        f"for s in range({steps}):\n"
        f"    r.log({{k: s*0.001+i for i,k in enumerate({METRICS!r})}}, step=s)\n"
        "r.finish()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return root / "wandb" / "latest-run"


def gen_tensorboard(root: Path, steps: int) -> Path:
    code = (
        "from torch.utils.tensorboard import SummaryWriter\n"
        f"w=SummaryWriter({str(root / 'tb')!r})\n"
        f"for s in range({steps}):\n"
        f"    for i,k in enumerate({METRICS!r}): w.add_scalar(k, s*0.001+i, s)\n"
        "w.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return root / "tb"


def hrm_import(kind: str, src: Path, out: Path) -> int:
    from hrm_doctor import RunReader
    from hrm_doctor.cli import main

    shutil.rmtree(out, ignore_errors=True)
    assert main(["import", kind, str(src), str(out)]) == 0
    return len(RunReader(out).scalars())


def leet(src: Path) -> int:
    import pandas as pd

    wandb_bin = Path(sys.executable).with_name("wandb")
    p = subprocess.run(
        [str(wandb_bin), "leet", "inspect", "--json", str(src)],
        capture_output=True,
        check=True,
        text=True,
    )
    rows = [
        rec["history"]["item"]
        for line in p.stdout.splitlines()
        if '"type":"history"' in line[:40] and (rec := json.loads(line))
    ]
    return len(pd.DataFrame(rows))


def event_accumulator(logdir: Path) -> int:
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    frames = [
        pd.DataFrame([(e.step, e.value) for e in acc.Scalars(t)], columns=["step", t]).set_index(
            "step"
        )
        for t in acc.Tags()["scalars"]
    ]
    return len(pd.concat(frames, axis=1))


def tbparse(logdir: Path) -> int | None:
    try:
        from tbparse import SummaryReader
    except ImportError:
        return None
    return len(SummaryReader(str(logdir), pivot=True).scalars)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--only", choices=("wandb", "tensorboard"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hrm-import-bench-"))
    try:
        if args.only in (None, "wandb"):
            gen_s, src = timed(lambda: gen_wandb(root, args.steps))
            size = sum(p.stat().st_size for p in src.resolve().glob("*.wandb"))
            print(f"W&B offline run: {args.steps} steps x 10 metrics, {size / 1e6:.1f} MB "
                  f"(generated in {gen_s:.1f} s)")  # fmt: skip
            ours, n = timed(lambda: hrm_import("wandb", src, root / "r-wandb"))
            print(f"  hrm-doctor import wandb + read back    {ours:7.2f} s  ({n} rows)")
            try:
                t, n2 = timed(lambda: leet(src))
                print(f"  wandb leet inspect --json + pandas     {t:7.2f} s  ({n2} rows)  "
                      f"ratio {t / ours:.1f}x")  # fmt: skip
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                print(f"  wandb leet inspect --json: failed ({exc})")
        if args.only in (None, "tensorboard"):
            gen_s, logdir = timed(lambda: gen_tensorboard(root, args.steps))
            size = sum(p.stat().st_size for p in logdir.rglob("*"))
            print(f"TensorBoard logdir: {args.steps} steps x 10 metrics, {size / 1e6:.1f} MB "
                  f"(generated in {gen_s:.1f} s)")  # fmt: skip
            ours, n = timed(lambda: hrm_import("tensorboard", logdir, root / "r-tb"))
            print(f"  hrm-doctor import tensorboard + read   {ours:7.2f} s  ({n} rows)")
            t, n2 = timed(lambda: event_accumulator(logdir))
            print(f"  EventAccumulator + pandas              {t:7.2f} s  ({n2} rows)  "
                  f"ratio {t / ours:.1f}x")  # fmt: skip
            t, n3 = timed(lambda: tbparse(logdir))
            if n3 is None:
                print("  tbparse: not installed (pip install tbparse)")
            else:
                print(f"  tbparse (pivot)                        {t:7.2f} s  ({n3} rows)  "
                      f"ratio {t / ours:.1f}x")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
