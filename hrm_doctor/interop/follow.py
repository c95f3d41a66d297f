"""Live follow of a foreign run for `hrm-doctor watch`: the daemon's only view of interop.

`open_follower(target)` returns None for an hrm-doctor run or root; for a W&B run directory or
a TensorBoard logdir it returns a `Follower` whose `update()` converts what is new into
``into`` (default ``SRC/../hrm-doctor/NAME``, or ``$HRM_DOCTOR_IMPORT_INTO``), which the daemon
then watches like any run. W&B's ``latest-run`` link moves when the trainer starts a new run:
followed through it, ``into`` is a root (default ``wandb/hrm-doctor``) with one run directory
per run the link has pointed to, and the link is resolved again at every update.
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


def is_moving_link(kind: str, src: Path) -> bool:
    """W&B's `latest-run` (a link that moves to each new run), as opposed to a run directory."""
    return kind == "wandb" and src.name == "latest-run"


class Follower:
    """Converts a growing foreign run on each `update()`; `run_dir` is what the daemon watches
    (the run's directory, or for a moving link the root of one directory per run)."""

    def __init__(self, kind: str, src: Path, into: Path, name_map=None, *, per_run=False) -> None:
        self.kind = kind
        self.src = src
        self.run_dir = into
        self.name_map = name_map
        self.per_run = per_run
        self.current: Path | None = None  # the run a moving link points to now
        self.importer = None if per_run else self._importer(src, into)
        self.new_runs = False
        """A new run directory appeared since the daemon last looked (it clears this)."""
        self._follow_link()

    def _importer(self, src: Path, into: Path):
        from hrm_doctor.interop.importer import Importer

        return Importer(open_source(self.kind, src, live=True), into, self.name_map)

    def _follow_link(self) -> None:
        """Resolve the link again; when it points to another run, finish the old one's import
        and start the new one's, into its own directory under the root."""
        if not self.per_run:
            return
        try:
            target = self.src.resolve(strict=True)
        except OSError:  # not created yet (the trainer has not started), or being replaced
            return
        if target == self.current:
            return
        self.close()
        self.current = target
        self.importer = self._importer(target, self.run_dir / target.name)
        self.new_runs = True

    def update(self, *, final: bool = False) -> int:
        self._follow_link()
        return 0 if self.importer is None else self.importer.update(final=final)

    def close(self) -> None:
        if self.importer is not None:
            self.importer.update(final=True)
            self.importer.close()


def open_follower(target: str | Path, into: str | Path | None = None) -> Follower | None:
    target = Path(target)
    kind = detect_source(target)
    if kind is None:
        return None
    per_run = is_moving_link(kind, target)
    into = into or os.environ.get(INTO_ENV)
    if into is None:
        into = target.absolute().parent / "hrm-doctor" if per_run else default_into(target)
    return Follower(kind, target, Path(into), per_run=per_run)
