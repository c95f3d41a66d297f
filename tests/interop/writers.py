"""Foreign trainers for the interop tests: the reference HRM or TRM trainer's W&B names, or
TensorBoard.

Run as a script (a subprocess, so wandb's service and torch stay out of the test process):
``python writers.py wandb|wandb-trm|tensorboard OUT_DIR STEPS BAD_STEP [SLEEP_S] [RELEASE_FILE]``.
With RELEASE_FILE, the writer logs every step, then waits (at most 60 s) for that file to exist
before finishing: the live test checks the diagnosis while the writer is still running.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

REFERENCE = (
    "train/accuracy",
    "train/exact_accuracy",
    "train/q_halt_accuracy",
    "train/steps",
    "train/count",
    "train/lm_loss",
    "train/q_halt_loss",
    "train/q_continue_loss",
    "train/lr",
)
CONFIG = {"lr": 1e-4, "global_batch_size": 768, "arch": {"H_cycles": 2, "L_cycles": 2}}
# TinyRecursiveModels' pretrain.py: no q_continue_loss (no_ACT_continue), config.model_dump()
# of its PretrainConfig with arch/trm.yaml, and the README's Sudoku recipe without ema.
TRM_NAMES = tuple(n for n in REFERENCE if n != "train/q_continue_loss")
TRM_CONFIG = {
    "arch": {
        "name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
        "halt_exploration_prob": 0.1, "halt_max_steps": 16, "H_cycles": 3, "L_cycles": 6,
        "H_layers": 0, "L_layers": 2, "hidden_size": 512, "num_heads": 8, "expansion": 4,
        "puzzle_emb_ndim": 512, "pos_encodings": "none", "forward_dtype": "bfloat16",
        "mlp_t": True, "puzzle_emb_len": 16, "no_ACT_continue": True,
    },
    "data_paths": ["data/sudoku-extreme-1k-aug-1000"], "evaluators": [],
    "global_batch_size": 768, "epochs": 50000, "eval_interval": 5000, "lr": 1e-4,
    "lr_min_ratio": 1.0, "lr_warmup_steps": 2000, "weight_decay": 1.0, "beta1": 0.9,
    "beta2": 0.95, "puzzle_emb_lr": 1e-4, "puzzle_emb_weight_decay": 1.0, "seed": 0,
    "ema": False, "ema_rate": 0.999, "freeze_weights": False,
}  # fmt: skip


def metrics(step: int, bad_step: int, names: tuple[str, ...] = REFERENCE) -> dict[str, float]:
    m = {name: 0.5 + 0.01 * math.sin(step + i) for i, name in enumerate(names)}
    m["train/lm_loss"] = float("nan") if step == bad_step else 2.0 / (1 + 0.01 * step)
    m["train/lr"] = 1e-4
    return m


def wait_for(release: Path | None) -> None:
    deadline = time.monotonic() + 60
    while release is not None and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def write_wandb(
    out: Path, steps: int, bad_step: int, sleep_s: float, release: Path | None, trm: bool = False
):
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    import wandb

    config = TRM_CONFIG if trm else {**CONFIG, "note": "x" * 70_000}  # > 2 blocks
    run = wandb.init(
        mode="offline",
        dir=str(out),
        project="trm-ref" if trm else "hrm-ref",
        config=config,
        settings=wandb.Settings(x_transaction_log_flush_interval=0.2),
    )
    run.log({"num_params": 5_028_866 if trm else 27_275_266}, step=0)
    for step in range(steps):
        run.log(metrics(step, bad_step, TRM_NAMES if trm else REFERENCE), step=step)
        if step % 10 == 0:
            evaluation = {"all": {"accuracy": 0.1, "exact_accuracy": 0.0}}
            if trm:  # its ARC evaluator's results join the evaluation's dict (pretrain.py)
                evaluation |= {f"ARC/pass@{k}": 0.01 * k for k in (1, 2, 5, 10, 100, 1000)}
            run.log(evaluation, step=step)
        if sleep_s:
            time.sleep(sleep_s)
    wait_for(release)
    run.finish()


def write_tensorboard(out: Path, steps: int, bad_step: int, sleep_s: float, release):
    import torch
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(out), flush_secs=1)
    for step in range(steps):
        for name, value in metrics(step, bad_step).items():
            w.add_scalar(name, value, step)
        if step % 10 == 0:
            w.add_histogram("grad/hist", torch.arange(10.0), step)
        if sleep_s:
            w.flush()
            time.sleep(sleep_s)
    w.flush()
    wait_for(release)
    w.close()


if __name__ == "__main__":
    kind, out, steps, bad = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sleep_s = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    release = Path(sys.argv[6]) if len(sys.argv) > 6 else None
    if kind == "tensorboard":
        write_tensorboard(out, steps, bad, sleep_s, release)
    else:
        write_wandb(out, steps, bad, sleep_s, release, trm=kind == "wandb-trm")
