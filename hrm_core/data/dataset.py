"""Opens one split of a dataset directory and checks that its files agree with each other.

Token arrays are memory-mapped (a full Sudoku-Extreme split is hundreds of MB); the small offset
arrays are loaded. Every inconsistency a user can cause (a missing file, a truncated array, an
identifier outside the embedding table) is a one-line UserError naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrm_core.data.metadata import (
    ARRAY_FIELDS,
    METADATA_FILE,
    DatasetMetadata,
    array_path,
    read_identifiers,
    read_metadata,
)
from hrm_doctor.errors import UserError

BUILD_HINT = "build one with `python -m hrm_core.data build sudoku|maze|arc --out DIR`"


@dataclass(frozen=True, eq=False)
class PuzzleSet:
    """One set of a split: examples grouped into puzzles, puzzles grouped into groups."""

    name: str
    inputs: np.ndarray
    """(examples, seq_len) token ids."""
    labels: np.ndarray
    """(examples, seq_len) target ids (ignore_label_id where the loss should not look)."""
    puzzle_identifiers: np.ndarray
    """(puzzles,) row of the puzzle-embedding table of each puzzle."""
    puzzle_indices: np.ndarray
    """(puzzles + 1,) offsets: puzzle p owns examples [puzzle_indices[p], puzzle_indices[p+1])."""
    group_indices: np.ndarray
    """(groups + 1,) offsets: group g owns puzzles [group_indices[g], group_indices[g+1])."""

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_identifiers.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group_indices.shape[0]) - 1


@dataclass(frozen=True, eq=False)
class PuzzleDataset:
    """One split (`train` or `test`) of a dataset directory, validated."""

    path: Path
    """The dataset directory (the parent of the split folder)."""
    split: str
    metadata: DatasetMetadata
    sets: Mapping[str, PuzzleSet]
    identifiers: tuple[str, ...] | None
    """Puzzle names by identifier from `identifiers.json`, when present."""

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.sets.values())

    @classmethod
    def open(cls, path: str | Path, split: str, check_values: bool = True) -> PuzzleDataset:
        """Open `<path>/<split>`; `check_values` also scans token and identifier ranges."""
        root = Path(path)
        split_dir = root / split
        if not root.is_dir():
            raise UserError(f"{root}: dataset directory not found; {BUILD_HINT}")
        if not (split_dir / METADATA_FILE).is_file():
            raise UserError(f"{split_dir / METADATA_FILE}: file not found (no '{split}' split)")
        metadata = read_metadata(split_dir)
        sets = {name: _load_set(split_dir, name, metadata, check_values) for name in metadata.sets}
        groups = sum(s.num_groups for s in sets.values())
        if groups != metadata.total_groups:
            raise UserError(
                f"{split_dir / METADATA_FILE}: total_groups is {metadata.total_groups} but the "
                f"group_indices arrays hold {groups} groups"
            )
        identifiers = read_identifiers(root)
        if identifiers is not None and len(identifiers) != metadata.num_puzzle_identifiers:
            raise UserError(
                f"{root / 'identifiers.json'}: {len(identifiers)} names but dataset.json says "
                f"num_puzzle_identifiers={metadata.num_puzzle_identifiers}"
            )
        return cls(root, split, metadata, sets, identifiers)


def open_splits(
    path: str | Path, splits: tuple[str, ...] = ("train", "test")
) -> dict[str, PuzzleDataset]:
    """Open several splits and check they agree on what sizes the model (vocab, seq, ids)."""
    opened = {split: PuzzleDataset.open(path, split) for split in splits}
    first = next(iter(opened.values()))
    for dataset in opened.values():
        for key in ("vocab_size", "seq_len", "num_puzzle_identifiers", "pad_id", "ignore_label_id"):
            mine, theirs = getattr(dataset.metadata, key), getattr(first.metadata, key)
            if mine != theirs:
                raise UserError(
                    f"{dataset.path / dataset.split / METADATA_FILE}: {key}={mine} differs from "
                    f"{key}={theirs} in the '{first.split}' split"
                )
    return opened


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a readable .npy array ({reason})") from None
    if not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"{path}: expected an integer array, got dtype {array.dtype}")
    return array


def _load_set(split_dir: Path, name: str, meta: DatasetMetadata, check_values: bool) -> PuzzleSet:
    paths = {field: array_path(split_dir, name, field) for field in ARRAY_FIELDS}
    arrays = {field: _load_array(p, field in ("inputs", "labels")) for field, p in paths.items()}
    inputs, labels = arrays["inputs"], arrays["labels"]
    identifiers = arrays["puzzle_identifiers"]
    puzzle_indices, group_indices = arrays["puzzle_indices"], arrays["group_indices"]
    for field in ("inputs", "labels"):
        shape = arrays[field].shape
        if len(shape) != 2 or shape[1] != meta.seq_len:
            raise UserError(
                f"{paths[field]}: shape {shape} is not (examples, seq_len={meta.seq_len})"
            )
    if labels.shape != inputs.shape:
        raise UserError(
            f"{paths['labels']}: shape {labels.shape} differs from inputs {inputs.shape}"
        )
    for field in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
        if arrays[field].ndim != 1:
            raise UserError(
                f"{paths[field]}: expected a 1-D array, got shape {arrays[field].shape}"
            )
    _check_offsets(paths["puzzle_indices"], puzzle_indices, inputs.shape[0], "examples")
    if puzzle_indices.shape[0] != identifiers.shape[0] + 1:
        raise UserError(
            f"{paths['puzzle_indices']}: {puzzle_indices.shape[0]} offsets for "
            f"{identifiers.shape[0]} puzzles (expected puzzles + 1)"
        )
    _check_offsets(paths["group_indices"], group_indices, identifiers.shape[0], "puzzles")
    if check_values:
        ids_key, num_ids = "num_puzzle_identifiers", meta.num_puzzle_identifiers
        _check_range(paths["puzzle_identifiers"], identifiers, ids_key, num_ids, None)
        _check_range(paths["inputs"], inputs, "vocab_size", meta.vocab_size, None)
        _check_range(paths["labels"], labels, "vocab_size", meta.vocab_size, meta.ignore_label_id)
    return PuzzleSet(name, inputs, labels, identifiers, puzzle_indices, group_indices)


def _check_offsets(path: Path, offsets: np.ndarray, total: int, unit: str) -> None:
    """Offsets start at 0, end at `total` and strictly increase (no empty puzzle or group)."""
    if offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != total:
        first = offsets[0] if offsets.shape[0] else None
        last = offsets[-1] if offsets.shape[0] else None
        raise UserError(f"{path}: offsets must run from 0 to {total} {unit}, got {first}..{last}")
    if offsets.shape[0] > 1 and np.any(np.diff(offsets) <= 0):
        where = int(np.argmax(np.diff(offsets) <= 0))
        raise UserError(f"{path}: offsets must strictly increase (entry {where + 1} does not)")


def _check_range(path: Path, values: np.ndarray, key: str, upper: int, allowed: int | None) -> None:
    """Every value lies in [0, upper), or equals `allowed` (a label ignore id outside the vocab)."""
    if values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high < upper:
        return
    bad = (values < 0) | (values >= upper)
    if allowed is not None:
        bad &= values != allowed
    if np.any(bad):
        offending = np.asarray(values)[bad]
        worst = int(offending.max()) if int(offending.max()) >= upper else int(offending.min())
        raise UserError(f"{path}: value {worst} outside [0, {key}={upper}) from dataset.json")
