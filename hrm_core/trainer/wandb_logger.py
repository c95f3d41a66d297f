"""Weights & Biases logging on rank 0, under the reference's metric names (HRM_NOTES, "W&B names").

Offline by default (no account, no network: the run lands in RUN/wandb/ and `wandb sync` can
upload it later); disabled in tests (WANDB_MODE=disabled wins over the config); online when
asked. wandb is imported only when the mode is not `disabled`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def effective_mode(config_mode: str) -> str:
    """The config's mode, unless the environment says WANDB_MODE=disabled (tests, CI)."""
    if os.environ.get("WANDB_MODE", "").lower() == "disabled" or os.environ.get("WANDB_DISABLED"):
        return "disabled"
    return config_mode


class WandbLogger:
    """Scalars only (1-D telemetry arrays stay in the run directory); a no-op when disabled."""

    def __init__(
        self,
        mode: str,
        project: str,
        name: str | None,
        run_dir: str | os.PathLike[str],
        config: Mapping[str, Any],
        run_id: str | None,
        active: bool,
    ) -> None:
        self.mode = effective_mode(mode)
        self.run = None
        if not active or self.mode == "disabled":
            return
        import wandb

        run_dir = Path(run_dir)
        self.run = wandb.init(
            project=project,
            name=name or run_dir.name,
            dir=str(run_dir),
            mode=self.mode,
            config=dict(config),
            id=run_id,
            resume="allow" if run_id else None,
            # Keep the console ours (rich progress) and the offline run free of network calls.
            settings=wandb.Settings(console="off", silent=True),
        )

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def set_num_params(self, num_params: int) -> None:
        if self.run is not None:
            self.run.summary["num_params"] = num_params
            self.run.config.update({"num_params": num_params}, allow_val_change=True)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is None:
            return
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        self.run.log(scalars, step=step)

    def close(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
