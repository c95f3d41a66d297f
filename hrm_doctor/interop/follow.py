"""Live follow of a foreign run for `hrm-doctor watch`: the daemon's only view of interop.

`open_follower(target)` returns None for an hrm-doctor run or root; for a W&B run directory or
a TensorBoard logdir it returns a `Follower` whose `update()` converts what is new into
``into`` (default ``SRC/../hrm-doctor/NAME``, or ``$HRM_DOCTOR_IMPORT_INTO``), which the daemon
then watches like any run.
"""

from __future__ import annotations

import os
from pathlib import Path

from hrm_doctor.errors import UserError
from hrm_doctor.rundir import is_run_dir

INTO_ENV = "HRM_DOCTOR_IMPORT_INTO"


def detect_source(path: str | Path) -> str | None:
    """ "wandb", "tensorboard", or None (an hrm-doctor run or root, or nothing we know)."""
    from hrm_doctor.interop.tensorboard_source import looks_like_tensorboard_logdir
    from hrm_doctor.interop.wandb_source import looks_like_wandb_run

    path = Path(path)
    if path.is_dir() and is_run_dir(path):
        return None
    if looks_like_wandb_run(path):
        return "wandb"
    if looks_like_tensorboard_logdir(path):
        return "tensorboard"
    return None


def default_into(src: Path) -> Path:
    real = src.resolve() if src.exists() else src.absolute()
    return real.parent / "hrm-doctor" / real.name


def open_source(kind: str, src: str | Path, *, live: bool):
    if kind == "wandb":
        from hrm_doctor.interop.wandb_source import WandbOnlineSource, WandbRunSource

        path = Path(src)
        if not live and not path.exists() and str(src).count("/") == 2:
            return WandbOnlineSource(str(src))
        return WandbRunSource(path, live=live)
    if kind == "tensorboard":
        from hrm_doctor.interop.tensorboard_source import TensorBoardSource

        return TensorBoardSource(src, live=live)
    raise UserError(f"{src}: unknown source format {kind!r} (wandb or tensorboard)")


class Follower:
    """Converts a growing foreign run on each `update()`; `run_dir` is what the daemon watches."""

    def __init__(self, kind: str, src: Path, into: Path, name_map=None) -> None:
        from hrm_doctor.interop.importer import Importer

        self.kind = kind
        self.src = src
        self.run_dir = into
        self.importer = Importer(open_source(kind, src, live=True), into, name_map)

    def update(self, *, final: bool = False) -> int:
        return self.importer.update(final=final)

    def close(self) -> None:
        self.importer.update(final=True)
        self.importer.close()


def open_follower(target: str | Path, into: str | Path | None = None) -> Follower | None:
    target = Path(target)
    kind = detect_source(target)
    if kind is None:
        return None
    into = into or os.environ.get(INTO_ENV) or default_into(target)
    return Follower(kind, target, Path(into))
