"""hrm-train evaluate: a checkpoint on a test set, as the reference's evaluate.py (+ arc_eval).

    hrm-train evaluate checkpoint=runs/arc1/checkpoints/step_00414456 data_path=data/arc-aug-1000
    hrm-train evaluate checkpoint=runs/arc1 out=eval/arc1        # the run's newest checkpoint
    torchrun --nproc_per_node=8 --no-python hrm-train evaluate checkpoint=runs/arc1

`checkpoint=` (a checkpoint or a run directory) is required; `out=` is where eval.json and, for
ARC, arc_submission.json go (default: the checkpoint's evaluation/ folder). Every other
`key=value` overrides the checkpoint's saved config (data_path, eval_batch_size, device,
eval_arc, ...). The test split runs halt_max_steps segments per example; an ARC test set is
scored as in the paper (eval/arc/pass@1, pass@2: votes across augmentations weighted by q_halt).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

USAGE = "hrm-train evaluate checkpoint=CHECKPOINT_OR_RUN [data_path=DIR] [out=DIR] [key=value ...]"
RESULTS_FILE = "eval.json"


def parse_argv(argv: list[str]) -> tuple[Path, Path | None, list[str]]:
    """(checkpoint, out, config overrides) from `key=value` words."""
    checkpoint, out, overrides = None, None, []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise UserError(f"evaluate: '{word}' is not key=value; usage: {USAGE}")
        if key == "checkpoint":
            checkpoint = Path(value)
        elif key == "out":
            out = Path(value)
        else:
            overrides.append(word)
    if checkpoint is None:
        raise UserError(f"evaluate: checkpoint= is required; usage: {USAGE}")
    return checkpoint, out, overrides


def checkpoint_config(state: dict[str, Any], overrides: list[str]) -> Any:
    """The checkpoint's saved config with `overrides` applied, validated."""
    from omegaconf import OmegaConf

    from hrm_core.config import validate_config

    try:
        merged = OmegaConf.merge(
            OmegaConf.create(state.get("config", {})), OmegaConf.from_dotlist(overrides)
        )
    except Exception as exc:  # OmegaConf's grammar errors: one line
        raise UserError(f"evaluate: overrides {overrides}: {str(exc).splitlines()[0]}") from None
    return validate_config(merged)


def run(argv: list[str]) -> int:
    """Evaluate; print the metrics on rank 0; 0, or 2 for a user error."""
    try:
        return _evaluate(*parse_argv(argv))
    except UserError as exc:
        print(f"hrm-train evaluate: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _evaluate(checkpoint: Path, out: Path | None, overrides: list[str]) -> int:
    import torch

    from hrm_core.data import EvalLoader, PuzzleDataset
    from hrm_core.model import ACTLossHead, build_model
    from hrm_core.trainer import checkpoint as ckpt
    from hrm_core.trainer.build import data_sizes, hrm_config_for, make_arc_scoring
    from hrm_core.trainer.distributed import init_distributed, pick_device
    from hrm_core.trainer.entry import shutdown_process_group
    from hrm_core.trainer.evaluation import evaluate, format_eval

    path = checkpoint
    if ckpt.read_state(path) is None:
        found = ckpt.list_checkpoints(checkpoint)
        if not found:
            raise UserError(
                f"checkpoint={checkpoint}: not a complete checkpoint nor a run directory with one"
            )
        path = found[-1][1]
    state = ckpt.read_state(path)
    assert state is not None
    cfg = checkpoint_config(state, overrides)
    info = init_distributed(cfg.device)
    try:
        device = pick_device(cfg.device, info.local_rank)
        test_set = PuzzleDataset.open(cfg.data_path, "test")
        batch = cfg.eval_batch_size or cfg.global_batch_size
        cfg.check_world_size(info.world_size)
        with torch.device(device):
            model = build_model(
                cfg.arch.name, hrm_config_for(cfg, test_set.metadata, batch // info.world_size)
            )
        loaded = ckpt.load_checkpoint(path, info.rank, device)
        problem = ckpt.data_mismatch(
            path, state.get("data", {}), data_sizes(cfg, test_set.metadata), cfg.data_path
        ) or ckpt.shape_mismatch(path, loaded.model, model.state_dict())
        if problem:
            raise UserError(problem.replace(", or start fresh with resume=never", ""))
        model.load_state_dict(loaded.model)
        loader = EvalLoader(test_set, batch, info.rank, info.world_size, cfg.eval_max_examples)
        out = out or path / "evaluation"
        results = evaluate(ACTLossHead(model, cfg.arch.loss_type), loader, device, info,
                           cfg.arch.halt_max_steps, arc=make_arc_scoring(cfg, test_set),
                           arc_out=out)  # fmt: skip
    finally:
        shutdown_process_group()
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        record = {"checkpoint": str(path), "step": int(state["step"]), **results}
        (out / RESULTS_FILE).write_text(json.dumps(record, indent=1) + "\n")
        print(format_eval(int(state["step"]), results))
        print(f"hrm-train evaluate: {out / RESULTS_FILE}")
    return 0
