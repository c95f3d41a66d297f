"""`make demo`: the main job on an embedded default, in a few minutes on a laptop's CPU.

1. builds the small 4x4 Sudoku data of the smoke experiment (once);
2. starts two smoke-sized HRM runs under runs/, each supervised by `hrm-doctor run --apply`:
   a healthy one, and one with a learning rate that blows it up (lr=10, no warmup), which the
   doctor heals (here: a rollback and restart with the recipe's settings);
3. serves the dashboard at http://127.0.0.1:8501 until Ctrl-C, which stops everything it started.

`--no-browser` runs the same to completion without the server (CI) and prints the verdicts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HEALTHY = "demo-healthy"
BAD_LR = "demo-bad-lr"
BAD_OVERRIDES = ("lr=10", "lr_warmup_steps=0")


def _bin(name: str) -> str:
    """A console script of this environment (next to the running Python)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def build_data(data_path: Path, root: Path) -> None:
    """Build the smoke data set as a user would: `hrm-train ... preflight=true` checks the
    configuration against the data and the machine, and builds the data when it is missing."""
    check = root / ".demo-preflight"
    cmd = [_bin("hrm-train"), "experiment=smoke", f"data_path={data_path}", f"run_dir={check}"]
    done = subprocess.run([*cmd, "preflight=true"], capture_output=True, text=True)
    shutil.rmtree(check, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(
            f"make demo: `{' '.join(cmd)} preflight=true` failed:\n{done.stdout}{done.stderr}"
        )


def supervised(run_dir: Path, data_path: Path, *overrides: str) -> list[str]:
    return [
        _bin("hrm-doctor"),
        "run",
        "--apply",
        "--",
        _bin("hrm-train"),
        "experiment=smoke",
        f"run_dir={run_dir}",
        f"data_path={data_path}",
        *overrides,
    ]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def verdicts(root: Path) -> int:
    """Print `hrm-doctor runs` and each demo run's diagnosis; 0 when both ended healthy."""
    from hrm_doctor.cli import main as cli

    cli(["runs", str(root)])
    worst = 0
    for name in (HEALTHY, BAD_LR):
        print(f"\n== hrm-doctor explain --run {root / name}")
        rc = cli(["explain", "--run", str(root / name), "--fail-on", "warning"])
        worst = max(worst, rc)
    print(f"\n== what the doctor did to {BAD_LR}")
    cli(["info", str(root / BAD_LR)])
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs", help="where the demo runs go (default: runs)")
    ap.add_argument("--data", default="data/smoke-sudoku-4x4", help="the smoke data set")
    ap.add_argument("--no-browser", action="store_true", help="run to completion, no dashboard")
    ap.add_argument("--port", type=int, default=8501)
    args = ap.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    root, data = Path(args.root), Path(args.data)
    root.mkdir(parents=True, exist_ok=True)
    for name in (HEALTHY, BAD_LR):  # a fresh demo each time
        shutil.rmtree(root / name, ignore_errors=True)

    print(f"hrm-doctor demo: building the 4x4 Sudoku data in {data} (once)", flush=True)
    build_data(data, root)
    logs = {name: open(root / f"{name}.log", "w") for name in (HEALTHY, BAD_LR)}  # noqa: SIM115
    procs = [
        subprocess.Popen(
            supervised(root / HEALTHY, data), stdout=logs[HEALTHY], stderr=subprocess.STDOUT
        ),
        subprocess.Popen(
            supervised(root / BAD_LR, data, *BAD_OVERRIDES),
            stdout=logs[BAD_LR],
            stderr=subprocess.STDOUT,
        ),
    ]
    print(
        f"hrm-doctor demo: training {root / HEALTHY} and {root / BAD_LR} ({' '.join(BAD_OVERRIDES)}),"
        f" each under `hrm-doctor run --apply`; logs in {root}/*.log",
        flush=True,
    )
    server = None
    try:
        if not args.no_browser:
            server = subprocess.Popen(
                [_bin("hrm-doctor"), "dashboard", str(root), "--port", str(args.port)]
            )
        for p in procs:
            p.wait()
        for name, f in logs.items():
            f.close()
            print(f"hrm-doctor demo: {name} done; the doctor said:")
            for line in (root / f"{name}.log").read_text().splitlines():
                if line.startswith(("hrm-doctor:", "[")):
                    print(f"  {line}")
        rc = verdicts(root)
        if server is not None:
            print(
                f"\nThe dashboard is at http://127.0.0.1:{args.port} (Ctrl-C to stop).", flush=True
            )
            server.wait()
        return rc
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(procs + ([server] if server is not None else []))


if __name__ == "__main__":
    sys.exit(main())
