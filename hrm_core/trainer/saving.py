"""Where the training loop is (`Loop`), and its checkpoints (`Saver`): the telemetry up to the
step is flushed first, then every rank writes its part of one atomic checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hrm_core.config import TrainConfig
from hrm_core.trainer import checkpoint as ckpt
from hrm_core.trainer.build import Network, TrainData, data_sizes
from hrm_core.trainer.control import HotParams
from hrm_core.trainer.distributed import DistInfo, barrier


@dataclass
class Loop:
    """The training loop's position and what a checkpoint of it saves."""

    step: int
    hot: HotParams
    carries: list[Any] | None = None  # the ACT carry of each micro-batch
    skips: list[dict[str, int]] = field(default_factory=list)
    replay: dict[int, dict[str, float | None]] = field(default_factory=dict)
    passes_evaluated: int = 0
    finished: bool = False  # leave the loop
    reached_end: bool = False  # the schedule's last step (total_steps) has run
    status: str = "finished"  # or "paused" (max_steps), "stopped" (a signal), "failed"
    exit_code: int = 0


class Saver:
    """Writes the loop's checkpoints (at most one per step) and prunes the old ones."""

    def __init__(
        self,
        cfg: TrainConfig,
        info: DistInfo,
        device: torch.device,
        data: TrainData,
        net: Network,
        config_dict: dict[str, Any],
        sync: Any,
        writer: Any,
        note: Any,
    ) -> None:
        self.cfg, self.info, self.device, self.data, self.net = cfg, info, device, data, net
        self.config_dict = config_dict
        self.sync, self.writer, self.note = sync, writer, note
        self.run_dir = Path(cfg.run_dir)
        self.last_saved = -1

    def save(self, loop: Loop, finished: bool = False) -> None:
        self.sync.flush()  # the held step is logged
        if self.last_saved == loop.step and not finished:
            return
        self.writer.flush()  # the telemetry up to this step is on disk before the checkpoint is
        net, data = self.net, self.data
        ckpt.save_checkpoint(
            self.run_dir,
            loop.step,
            rank=self.info.rank,
            world_size=self.info.world_size,
            barrier=lambda: barrier(self.info),
            state=lambda: {
                "finished": finished,
                "total_steps": data.total_steps,
                "passes_evaluated": loop.passes_evaluated,
                "hot": loop.hot.values,
                "skips": loop.skips,
                "loader": data.loader.state_dict(),
                "data": data_sizes(self.cfg, data.meta),
                "config": self.config_dict,
            },
            model=net.model.state_dict,
            optimizers=lambda: {
                "model": net.opt.state_dict(),
                "puzzle_emb": None if net.emb_opt is None else net.emb_opt.state_dict(),
                "ema": None if net.ema is None else net.ema.state_dict(),
            },
            rank_state={
                "rng": ckpt.capture_rng(self.device),
                "carry": None if loop.carries is None else [c.to_dict() for c in loop.carries],
                "loader": data.loader.state_dict(),
                "micro_batch": data.micro_batch,
            },
        )
        self.last_saved = loop.step
        if self.info.is_main:
            ckpt.prune(self.run_dir, self.cfg.keep_last)
            self.note(f"checkpoint: step {loop.step} -> {self.run_dir / ckpt.CHECKPOINTS_DIR}")
