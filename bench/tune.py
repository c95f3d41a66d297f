"""How much compute doctor pruning saves in `hrm-doctor tune` (real smoke-experiment trials).

The same study (same seed, so the same sampled trials while TPE is in its random start-up
phase) is run twice in one go: once pruned by the doctor (critical findings), once not pruned.
Reported: trials, steps and wall time of each; the steps and time pruning saved; the best
healthy trial of each (pruning must not lose it).
Usage: python bench/tune.py [--trials 8] [--epochs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hrm_doctor.tune.report import healthy_best
from hrm_doctor.tune.space import parse_space
from hrm_doctor.tune.storage import resolve_storage
from hrm_doctor.tune.study import TuneSettings, run_study

HRM_TRAIN = str(Path(sys.executable).parent / "hrm-train")
# reaches absurd learning rates on purpose: the top decades blow up
SPACE = """\
lr: {log: [1.0e-4, 100.0]}
puzzle_emb_lr: {log: [1.0e-3, 1.0e-1]}
weight_decay: {log: [1.0e-2, 1.0]}
"""


def study(root: Path, prune_on: str, args: argparse.Namespace, data: Path) -> dict:
    command = [
        HRM_TRAIN, "experiment=smoke", f"data_path={data}", f"epochs={args.epochs}",
        f"eval_interval={max(1, args.epochs // 4)}", "probe.enabled=false",
    ]  # fmt: skip
    s = TuneSettings(
        command=command,
        space=parse_space(SPACE, "bench space"),
        root=root,
        storage_url=resolve_storage(None, root),
        study_name=prune_on,
        trials=args.trials,
        metric=args.metric,
        prune_on=prune_on,
        sampler="tpe",
        seed=args.seed,
    )
    t0 = time.perf_counter()
    st = run_study(s, console=lambda text: print(f"  [{prune_on}] {text}", flush=True))
    wall_s = time.perf_counter() - t0
    trials = st.get_trials(deepcopy=False)
    best = healthy_best(st, 1)
    return {
        "wall_s": wall_s,
        "steps": sum(int(t.user_attrs.get("steps_run") or 0) for t in trials),
        "trial_s": sum(float(t.user_attrs.get("wall_s") or 0) for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "sick": sum(t.user_attrs.get("health") == "critical" for t in trials),
        "trials": {round(t.params["lr"], 12): t for t in trials},
        "best": (best[0].value, best[0].params["lr"]) if best else (None, None),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=8, help="smoke epochs per trial (default 8)")
    p.add_argument("--metric", default="eval/all/accuracy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    try:
        data = tmp / "data"  # built by the first trial, shared by all
        print(f"{args.trials} trials per study, smoke epochs={args.epochs}, metric {args.metric}")
        pruned = study(tmp / "pruned", "critical", args, data)
        plain = study(tmp / "plain", "never", args, data)
        same = sorted(pruned["trials"]) == sorted(plain["trials"])
        print()
        print(f"{'':24}{'pruned':>12}{'not pruned':>14}")
        for label, key in (("steps run", "steps"), ("trial time (s)", "trial_s"),
                           ("study wall time (s)", "wall_s")):  # fmt: skip
            print(f"{label:24}{pruned[key]:>12.0f}{plain[key]:>14.0f}")
        print(f"{'trials pruned':24}{pruned['pruned']:>12}{plain['pruned']:>14}")
        print(f"{'trials with a critical':24}{pruned['sick']:>12}{plain['sick']:>14}")
        for name, r in (("pruned", pruned), ("not pruned", plain)):
            value, lr = r["best"]
            print(f"best healthy ({name}): {args.metric}={value} at lr={lr}")
        print(f"same sampled trials in both studies: {same}")
        if same and pruned["pruned"]:
            per = [(lr, t.user_attrs.get("steps_run"), plain["trials"][lr].user_attrs.get("steps_run"))
                   for lr, t in pruned["trials"].items() if t.state.name == "PRUNED"]  # fmt: skip
            for lr, a, b in sorted(per):
                print(f"  lr={lr:.3g}: pruned at step {a}, ran {b} steps unpruned")
        saved = 1 - pruned["steps"] / max(plain["steps"], 1)
        saved_t = 1 - pruned["trial_s"] / max(plain["trial_s"], 1e-9)
        print(f"pruning saved {saved:.0%} of the steps and {saved_t:.0%} of the trial time")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
