"""Resuming a run exactly: weights, optimizer moments, schedule position, RNG of every rank,
ACT carry, data position, live-patched values (and the patches acked after the checkpoint,
replayed at their steps), and the batches a rollback skips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hrm_core.config import TrainConfig
from hrm_core.trainer import checkpoint as ckpt
from hrm_core.trainer.build import Network, TrainData, data_sizes, seed_everything
from hrm_core.trainer.control import ControlChannel, HotParams, replay_plan, restart_overrides
from hrm_core.trainer.distributed import DistInfo, broadcast_json
from hrm_doctor.errors import UserError


@dataclass
class Resumed:
    """Where the run goes on from (step 0 and nothing else for a fresh run)."""

    step: int = 0
    path: str | None = None  # the checkpoint resumed from
    carries: list[Any] | None = None  # the ACT carry of each micro-batch
    skips: list[dict[str, int]] = field(default_factory=list)  # data skipped after rollbacks
    replay: dict[int, dict[str, float | None]] = field(default_factory=dict)  # step -> patch
    finished: bool = False  # the checkpoint is the end of a finished run: nothing to do


def resume(
    cfg: TrainConfig,
    info: DistInfo,
    device: torch.device,
    data: TrainData,
    net: Network,
    hot: HotParams,
    config_dict: dict[str, Any],
) -> Resumed:
    """Restore the newest (or the named) checkpoint into the network, the loader and `hot`;
    a fresh run when there is none to resume (`cfg.resume`)."""
    from hrm_core.model import ACTCarry
    from hrm_core.trainer.distributed import on_main

    run_dir = Path(cfg.run_dir)
    found = on_main(info, lambda: _str(ckpt.resolve_resume(cfg.resume, run_dir)))
    if found is None:
        return Resumed()
    loaded = ckpt.load_checkpoint(Path(found), info.rank, device)
    state = loaded.state
    if state.get("finished") and loaded.step >= data.last_step:
        return Resumed(step=loaded.step, path=found, finished=True)
    problem = ckpt.data_mismatch(
        loaded.path, state.get("data", {}), data_sizes(cfg, data.meta), str(data.path)
    ) or ckpt.shape_mismatch(loaded.path, loaded.model, net.model.state_dict())
    if problem:
        raise UserError(problem)
    net.model.load_state_dict(loaded.model)
    net.opt.load_state_dict(loaded.optimizers["model"])
    if net.emb_opt is not None and loaded.optimizers.get("puzzle_emb") is not None:
        net.emb_opt.load_state_dict(loaded.optimizers["puzzle_emb"])
    if net.ema is not None:
        if loaded.optimizers.get("ema") is not None:
            net.ema.load_state_dict(loaded.optimizers["ema"])
        else:  # ema switched on at this restart: the average starts from the loaded weights
            net.ema.reset()
    out = Resumed(step=loaded.step, path=found, skips=list(state.get("skips", [])))
    overridden = restart_overrides(state.get("config", {}), config_dict)
    hot.update({k: v for k, v in state.get("hot", {}).items() if k not in overridden})
    rank_state = loaded.rank_state
    same_layout = (
        rank_state is not None
        and int(state["world_size"]) == info.world_size
        and rank_state.get("micro_batch") == data.micro_batch
    )
    data.loader.load_state_dict(rank_state["loader"] if rank_state else state["loader"])
    if same_layout:
        if rank_state["carry"]:
            out.carries = [ACTCarry.from_dict(c) for c in rank_state["carry"]]
        ckpt.restore_rng(rank_state["rng"], device)
    else:
        if info.is_main:
            print(
                "hrm-train: world size or batch layout changed since the checkpoint: ACT carry "
                "restarts and RNG is reseeded (the resume is not bit-exact)"
            )
        seed_everything(cfg.seed + 1_000_003 * info.rank + out.step)
    if info.is_main:
        ckpt.supersede_after(run_dir, out.step)  # a rollback: newer checkpoints, another branch
    acks = ControlChannel(run_dir).applied_after(out.step) if info.is_main else None
    out.replay = replay_plan(broadcast_json(info, acks), overridden)
    return out


def skip_batches(cfg: TrainConfig, loader: Any, resumed: Resumed) -> None:
    """Skip data after a rollback (the PaLM recipe against loss spikes), once per branch: the
    position moves on; no optimizer step, the schedule stays."""
    n = cfg.skip_batches
    if n and not any(s["batches"] == n for s in resumed.skips):
        batches = iter(loader)
        for _ in range(n):
            next(batches)
        resumed.skips.append({"from_step": resumed.step, "batches": n})


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
