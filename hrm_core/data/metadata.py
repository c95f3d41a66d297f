"""The reference HRM on-disk dataset format: file names and the `dataset.json` metadata.

A dataset directory holds `identifiers.json` and one folder per split (`train/`, `test/`), each
with `dataset.json` and, per set, five arrays `<set>__{inputs,labels,puzzle_identifiers,
puzzle_indices,group_indices}.npy` (HRM_NOTES, "Data format"). Data built by the reference
scripts (sapientinc/HRM) and by TRM (which adds `total_puzzles`) reads unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

METADATA_FILE = "dataset.json"
IDENTIFIERS_FILE = "identifiers.json"
BLANK_IDENTIFIER = "<blank>"
ARRAY_FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
IGNORE_LABEL = -100
"""The label value the loss ignores (torch's cross-entropy default); stored ignore ids map to it."""

_INT_KEYS = (
    "pad_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
)


def array_path(split_dir: Path, set_name: str, field: str) -> Path:
    """Where one array of one set lives, e.g. `train/all__inputs.npy`."""
    return split_dir / f"{set_name}__{field}.npy"


@dataclass(frozen=True)
class DatasetMetadata:
    """What `dataset.json` says about one split; the model and loss are sized from it."""

    pad_id: int
    """Token id of padding (inputs outside the puzzle)."""
    ignore_label_id: int | None
    """Label id the loss ignores (mapped to -100 by the loader); None: every label counts."""
    blank_identifier_id: int
    """Puzzle identifier used for padding rows of an evaluation batch."""
    vocab_size: int
    """Number of token ids (inputs and labels are in [0, vocab_size))."""
    seq_len: int
    """Tokens per example (81 for 9x9 Sudoku, 900 for 30x30 Maze and ARC)."""
    num_puzzle_identifiers: int
    """Rows of the puzzle-embedding table (identifiers are in [0, num_puzzle_identifiers))."""
    total_groups: int
    """Groups over all sets of the split; training draws one puzzle per group per epoch."""
    mean_puzzle_examples: float
    """Mean examples per puzzle over the split (sizes the reference's step count)."""
    sets: tuple[str, ...]
    """Names of the sets in the split (`all` for every reference builder)."""
    total_puzzles: int | None = None
    """Puzzles over all sets (written by TRM and by hrm_core; absent in reference data)."""

    def to_json_dict(self) -> dict[str, Any]:
        """The `dataset.json` object, keys in the reference order."""
        out = asdict(self)
        out["sets"] = list(self.sets)
        if self.total_puzzles is None:
            del out["total_puzzles"]
        return out

    @classmethod
    def from_json_dict(cls, raw: object, source: Path) -> DatasetMetadata:
        """Validate a parsed `dataset.json`; errors are one line naming `source` and the key."""
        if not isinstance(raw, dict):
            raise UserError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        for key in (*_INT_KEYS, "ignore_label_id", "mean_puzzle_examples", "sets"):
            if key not in raw:
                raise UserError(f"{source}: missing key '{key}'")
        for key in _INT_KEYS:
            if not _is_int(raw[key]) or raw[key] < 0:
                raise UserError(
                    f"{source}: key '{key}' must be a non-negative integer, got {raw[key]!r}"
                )
        ignore = raw["ignore_label_id"]
        if ignore is not None and not _is_int(ignore):
            raise UserError(
                f"{source}: key 'ignore_label_id' must be an integer or null, got {ignore!r}"
            )
        mean = raw["mean_puzzle_examples"]
        if isinstance(mean, bool) or not isinstance(mean, int | float):
            raise UserError(f"{source}: key 'mean_puzzle_examples' must be a number, got {mean!r}")
        sets = raw["sets"]
        if (
            not isinstance(sets, list)
            or not sets
            or not all(isinstance(s, str) and s for s in sets)
        ):
            raise UserError(f"{source}: key 'sets' must be a non-empty list of names, got {sets!r}")
        total_puzzles = raw.get("total_puzzles")
        if total_puzzles is not None and not _is_int(total_puzzles):
            raise UserError(
                f"{source}: key 'total_puzzles' must be an integer, got {total_puzzles!r}"
            )
        if raw["vocab_size"] < 1 or raw["seq_len"] < 1 or raw["num_puzzle_identifiers"] < 1:
            raise UserError(
                f"{source}: vocab_size, seq_len and num_puzzle_identifiers must be >= 1"
            )
        return cls(
            pad_id=raw["pad_id"],
            ignore_label_id=ignore,
            blank_identifier_id=raw["blank_identifier_id"],
            vocab_size=raw["vocab_size"],
            seq_len=raw["seq_len"],
            num_puzzle_identifiers=raw["num_puzzle_identifiers"],
            total_groups=raw["total_groups"],
            mean_puzzle_examples=float(mean),
            sets=tuple(sets),
            total_puzzles=total_puzzles,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_json(path: Path) -> object:
    """Parse a JSON file; a missing or malformed file is a one-line UserError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None


def read_metadata(split_dir: Path) -> DatasetMetadata:
    """Read and validate `<split_dir>/dataset.json`."""
    path = split_dir / METADATA_FILE
    return DatasetMetadata.from_json_dict(read_json(path), path)


def read_identifiers(dataset_dir: Path) -> tuple[str, ...] | None:
    """The puzzle names by identifier (`identifiers.json`), or None when the file is absent."""
    path = dataset_dir / IDENTIFIERS_FILE
    if not path.exists():
        return None
    raw = read_json(path)
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise UserError(f"{path}: expected a JSON list of puzzle names")
    return tuple(raw)


def write_json(path: Path, value: object) -> None:
    """Write a JSON file the way the reference does (compact, one line)."""
    path.write_text(json.dumps(value), encoding="utf-8")
