"""One entry point over the three builders, and `ensure_dataset` for configs that build on demand.

A build writes into a temporary sibling directory and renames it into place, so a crash never
leaves a half-written dataset, and two processes (ranks) racing to build the same data agree on
one result. `build.json` records the builder options, so reusing a directory built with other
options is an error rather than a silent surprise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_core.data.arc import ArcBuildOptions, build_arc
from hrm_core.data.maze import MazeBuildOptions, build_maze
from hrm_core.data.metadata import METADATA_FILE, read_json
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.sudoku import SudokuBuildOptions, build_sudoku
from hrm_core.data.writer import BUILD_INFO_FILE
from hrm_doctor.errors import UserError

BuildOptions = SudokuBuildOptions | MazeBuildOptions | ArcBuildOptions

BUILDERS: dict[str, tuple[type[BuildOptions], Callable[[Any, Path, Progress], None]]] = {
    "sudoku": (SudokuBuildOptions, build_sudoku),
    "maze": (MazeBuildOptions, build_maze),
    "arc": (ArcBuildOptions, build_arc),
}


def make_build_options(kind: str, **values: Any) -> BuildOptions:
    """Options of builder `kind` from keyword values; bad names or values are a UserError."""
    if kind not in BUILDERS:
        raise UserError(f"unknown dataset kind '{kind}' (choose one of {', '.join(BUILDERS)})")
    options_type = BUILDERS[kind][0]
    names = {f.name for f in dataclasses.fields(options_type)} - {"kind"}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(
            f"{kind} build: unknown option '{unknown[0]}' (options: {', '.join(sorted(names))})"
        )
    try:
        return options_type(**values)
    except ValueError as exc:
        raise UserError(f"{kind} build: {exc}") from None


def build_dataset(options: BuildOptions, out_dir: str | Path, progress: Progress = SILENT) -> Path:
    """Build a dataset into `out_dir`, which must not exist yet; returns its path."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(
            f"{out}: already exists and is not empty; choose another --out or remove it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        BUILDERS[options.kind][1](options, staging, progress)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def ensure_dataset(data_path: str | Path, options: BuildOptions | None) -> Path:
    """Return `data_path`, building it with `options` first when it holds no dataset.

    An existing dataset is used as is, unless it records different build options (then a
    UserError says so). Without options, a missing dataset is a UserError.
    """
    path = Path(data_path)
    if (path / "train" / METADATA_FILE).is_file():
        info_path = path / BUILD_INFO_FILE
        if options is not None and info_path.is_file():
            recorded = read_json(info_path)
            wanted = json.loads(json.dumps(dataclasses.asdict(options)))  # tuples as lists
            builder = recorded.get("builder") if isinstance(recorded, dict) else None
            if isinstance(builder, dict):  # options added since that build: their defaults
                builder = {**json.loads(json.dumps(dataclasses.asdict(type(options)()))), **builder}
            if isinstance(recorded, dict) and builder != wanted:
                raise UserError(
                    f"{info_path}: dataset was built with {recorded.get('builder')}, the config "
                    f"asks for {wanted}; remove {path} or point data_path elsewhere"
                )
        return path
    if options is None:
        raise UserError(
            f"{path}: no dataset here (train/{METADATA_FILE} missing) and no data_build to make one"
        )
    try:
        return build_dataset(options, path)
    except OSError:
        if (path / "train" / METADATA_FILE).is_file():  # another process built it first
            return path
        raise
