"""Full checkpoints, written atomically, and everything needed to resume a run exactly.

A checkpoint is a directory `RUN/checkpoints/step_00001200/` holding `model.pt` (weights and
the puzzle-embedding table), `optimizers.pt` (both optimizers' state), one `rank_NNNNN.pt` per
rank (its RNG states, ACT carry and data-loader position) and `state.json` (step, schedule
position, live-patched values, passes evaluated, resolved config, data sizes). Ranks write into
`.partial-step_...`; rank 0 fsyncs and renames it into place, so a kill at any moment leaves
either the new checkpoint or none, and the previous ones stay loadable.

The reference saved weights only: a restart re-ran warmup with fresh Adam moments and a new
data order (HRM_NOTES, "Where the reference is weak").
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_doctor.errors import UserError
from hrm_doctor.rundir import (  # the layout the doctor's rollbacks read: one owner of the names
    CHECKPOINTS_DIR,
    PARTIAL_PREFIX,
    SUPERSEDED_DIR,
    checkpoint_name,
    checkpoints,
)

STATE_FILE = "state.json"
MODEL_FILE = "model.pt"
OPTIMIZERS_FILE = "optimizers.pt"
FORMAT = "hrm-train-checkpoint"
FORMAT_VERSION = 1


def rank_file(rank: int) -> str:
    return f"rank_{rank:05d}.pt"


@dataclass(frozen=True)
class Checkpoint:
    """One rank's view of a loaded checkpoint."""

    path: Path
    state: dict[str, Any]
    """state.json: step, schedule, hot values, config, data sizes, world size, ..."""
    model: dict[str, torch.Tensor]
    optimizers: dict[str, Any]
    rank_state: dict[str, Any] | None
    """This rank's RNG, carry and loader position (None when the rank did not exist then)."""

    @property
    def step(self) -> int:
        return int(self.state["step"])


# ---- finding checkpoints -------------------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any] | None:
    """The checkpoint's state.json, or None when `path` is not a complete checkpoint."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    files = [MODEL_FILE, OPTIMIZERS_FILE, *(rank_file(r) for r in range(state["world_size"]))]
    if not all((path / name).is_file() for name in files):
        return None
    return state


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first (partial and superseded ones are skipped)."""
    return [(step, path) for step, path in checkpoints(run_dir) if read_state(path) is not None]


def resolve_resume(resume: str, run_dir: str | os.PathLike[str]) -> Path | None:
    """`auto`: newest complete checkpoint of run_dir (None if none); `true`: the same, and a
    UserError when there is none; `never`: None; else a checkpoint directory, or a run
    directory whose newest checkpoint is taken."""
    from hrm_core.config import RESUME_VALUES

    if resume == "never":
        return None
    if resume in ("auto", "true"):
        found = list_checkpoints(run_dir)
        if not found and resume == "true":
            raise UserError(
                f"config key 'resume': true, but {run_dir} has no complete checkpoint "
                "(resume=auto starts fresh when there is none)"
            )
        return found[-1][1] if found else None
    path = Path(resume)
    if read_state(path) is not None:
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1][1]
    if not path.exists():
        raise UserError(
            f"config key 'resume': {path}: no such checkpoint or run directory "
            f"(accepted: {RESUME_VALUES})"
        )
    raise UserError(
        f"config key 'resume': {path}: not a complete checkpoint (state.json, {MODEL_FILE}, "
        f"{OPTIMIZERS_FILE} and one rank_*.pt per rank) nor a run with checkpoints/ "
        f"(accepted: {RESUME_VALUES})"
    )


# ---- RNG -----------------------------------------------------------------------------------------


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Python, numpy, torch (CPU) and accelerator RNG states, as tensors and plain values."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "mt": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["mt"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"].cpu())


# ---- writing -------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_file(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    *,
    rank: int,
    world_size: int,
    barrier: Callable[[], None],
    state: Callable[[], dict[str, Any]],
    model: Callable[[], dict[str, torch.Tensor]],
    optimizers: Callable[[], dict[str, Any]],
    rank_state: dict[str, Any],
) -> Path:
    """Write checkpoint `step` atomically; every rank calls this together.

    `state`, `model` and `optimizers` are called on rank 0 only (the model and optimizer
    states are identical on every rank). An existing checkpoint of the same step (from a
    superseded branch) is moved to checkpoints/superseded/ first.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    name = checkpoint_name(step)
    final, partial = root / name, root / f"{PARTIAL_PREFIX}{name}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed mid-save
        partial.mkdir()
    barrier()
    _save_file(rank_state, partial / rank_file(rank))
    if rank == 0:
        _save_file(model(), partial / MODEL_FILE)
        _save_file(optimizers(), partial / OPTIMIZERS_FILE)
    barrier()  # every rank's file is on disk
    if rank == 0:
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": step,
            "world_size": world_size,
            "saved_at": time.time(),
            **state(),
        }
        with open(partial / STATE_FILE, "w") as f:
            json.dump(meta, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(partial)
        if final.exists():
            _move_to_superseded(root, final)
        os.rename(partial, final)  # THE commit point: atomic within one file system
        _fsync_dir(root)
    barrier()
    return final


def _move_to_superseded(root: Path, path: Path) -> None:
    target = root / SUPERSEDED_DIR
    target.mkdir(exist_ok=True)
    os.rename(path, target / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


def supersede_after(run_dir: str | os.PathLike[str], step: int) -> list[Path]:
    """Move checkpoints newer than `step` aside (a rollback): `resume=auto` must never pick a
    checkpoint of the abandoned branch. They stay on disk under checkpoints/superseded/."""
    moved = []
    root = Path(run_dir) / CHECKPOINTS_DIR
    for s, path in list_checkpoints(run_dir):
        if s > step:
            _move_to_superseded(root, path)
            moved.append(path)
    return moved


def prune(run_dir: str | os.PathLike[str], keep_last: int | None) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints (None: keep all)."""
    if keep_last is None:
        return []
    found = list_checkpoints(run_dir)
    removed = []
    for _, path in found[: max(0, len(found) - keep_last)]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# ---- reading -------------------------------------------------------------------------------------


def load_checkpoint(path: Path, rank: int, device: torch.device) -> Checkpoint:
    """Load what this rank needs; a damaged file is a one-line UserError naming it."""
    state = read_state(path)
    if state is None:
        raise UserError(f"{path}: not a complete checkpoint")

    def load(name: str) -> Any:
        try:
            return torch.load(path / name, map_location=device, weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say which one
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{path / name}: unreadable checkpoint file ({reason})") from None

    has_rank = rank < int(state["world_size"])
    return Checkpoint(
        path=path,
        state=state,
        model=load(MODEL_FILE),
        optimizers=load(OPTIMIZERS_FILE),
        rank_state=load(rank_file(rank)) if has_rank else None,
    )


def data_mismatch(
    path: Path, saved: Mapping[str, Any], current: Mapping[str, Any], data_path: str
) -> str | None:
    """One line naming what differs between the checkpoint's data sizes and the data's.

    The classic one: an ARC checkpoint and a rebuilt dataset with another number of augmented
    puzzles ("size mismatch on puzzle_emb.weights", HRM_NOTES "Where the reference is weak").
    """
    labels = {
        "num_puzzle_identifiers": "puzzle-embedding rows (num_puzzle_identifiers)",
        "seq_len": "seq_len",
        "vocab_size": "vocab_size",
        "puzzle_emb_ndim": "puzzle-embedding width (arch.puzzle_emb_ndim)",
    }
    for key, label in labels.items():
        if key in saved and saved[key] != current[key]:
            where, fix = f"for the data at {data_path}", "use the data it was trained on"
            if key == "puzzle_emb_ndim":
                where, fix = "in this config", "use its arch.* settings"
            return (
                f"{path}: checkpoint does not fit: {label} is {saved[key]} in the checkpoint "
                f"but {current[key]} {where}; {fix}, or start fresh with resume=never"
            )
    return None


def shape_mismatch(
    path: Path, saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]
) -> str | None:
    """One line naming the first tensor whose name or shape differs (e.g. a changed arch.*)."""
    missing = sorted(set(current) - set(saved))
    extra = sorted(set(saved) - set(current))
    if missing or extra:
        which = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        return f"{path / MODEL_FILE}: weights do not fit this model ({which}); arch.* changed?"
    for name, tensor in current.items():
        if tuple(saved[name].shape) != tuple(tensor.shape):
            return (
                f"{path / MODEL_FILE}: {name} has shape {tuple(saved[name].shape)} in the "
                f"checkpoint, {tuple(tensor.shape)} in this model; arch.* changed?"
            )
    return None
