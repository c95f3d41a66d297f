"""Helper process for the checkpoint atomicity test: save step 1, then SIGKILL itself halfway
through writing model.pt of step 2 (a crash in the middle of a save)."""

from __future__ import annotations

import io
import os
import signal
import sys

import torch

from hrm_core.trainer import checkpoint as ckpt


def save(run_dir: str, step: int) -> None:
    ckpt.save_checkpoint(
        run_dir,
        step,
        rank=0,
        world_size=1,
        barrier=lambda: None,
        state=lambda: {"hot": {"lr": 1e-3}},
        model=lambda: {"w": torch.full((256, 256), float(step))},
        optimizers=lambda: {"model": {}, "puzzle_emb": None},
        rank_state={"rng": ckpt.capture_rng(torch.device("cpu")), "carry": None},
    )


def main() -> None:
    run_dir = sys.argv[1]
    save(run_dir, 1)
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "w" in obj:  # model.pt of step 2: half of it, then die
            buffer = io.BytesIO()
            real_save(obj, buffer)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(obj, f, *args, **kwargs)

    ckpt.torch.save = dying_save
    save(run_dir, 2)


if __name__ == "__main__":
    main()
