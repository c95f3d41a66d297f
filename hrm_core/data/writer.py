"""Writes a dataset directory in the reference format from groups of puzzles of examples.

Builders hand over whole groups (a puzzle and its augmentations) to a `SetWriter`, which keeps
the offset arrays (group -> puzzles -> examples) consistent and streams token rows to disk, so a
full ARC build (gigabytes of examples) never sits in memory. `DatasetWriter.close` writes the
`.npy` files, each split's `dataset.json` and `identifiers.json`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrm_core.data.metadata import (
    BLANK_IDENTIFIER,
    IDENTIFIERS_FILE,
    METADATA_FILE,
    DatasetMetadata,
    array_path,
    write_json,
)

BUILD_INFO_FILE = "build.json"
"""Provenance of a dataset built by hrm_core (builder and options); the reference ignores it."""


@dataclass(frozen=True)
class Vocabulary:
    """The token conventions shared by every split of a dataset."""

    vocab_size: int
    seq_len: int
    pad_id: int = 0
    ignore_label_id: int | None = 0
    blank_identifier_id: int = 0

    @property
    def token_dtype(self) -> np.dtype:
        """uint8 like the reference while the vocabulary fits, else int32."""
        return np.dtype(np.uint8 if self.vocab_size <= 256 else np.int32)


class SetWriter:
    """Accumulates the groups of one set; token rows go straight to a partial file."""

    def __init__(self, split_dir: Path, name: str, vocab: Vocabulary) -> None:
        self.split_dir, self.name, self.vocab = split_dir, name, vocab
        self._partial = {
            f: array_path(split_dir, name, f).with_suffix(".partial") for f in ("inputs", "labels")
        }
        self._files = {f: path.open("wb") for f, path in self._partial.items()}
        self._puzzle_identifiers: list[int] = []
        self._puzzle_indices: list[int] = [0]
        self._group_indices: list[int] = [0]

    @property
    def num_groups(self) -> int:
        return len(self._group_indices) - 1

    @property
    def num_puzzles(self) -> int:
        return len(self._puzzle_identifiers)

    @property
    def num_examples(self) -> int:
        return self._puzzle_indices[-1]

    def add_group(
        self,
        identifiers: Sequence[int],
        inputs: np.ndarray,
        labels: np.ndarray,
        puzzle_sizes: Sequence[int],
    ) -> None:
        """Append one group: puzzle p has `puzzle_sizes[p]` consecutive rows of inputs/labels."""
        if len(identifiers) != len(puzzle_sizes) or not puzzle_sizes or min(puzzle_sizes) < 1:
            raise ValueError(
                "a group needs one identifier and a size >= 1 per puzzle, at least one"
            )
        expected = (sum(puzzle_sizes), self.vocab.seq_len)
        if inputs.shape != expected or labels.shape != expected:
            raise ValueError(f"group arrays {inputs.shape}/{labels.shape} are not {expected}")
        self._files["inputs"].write(np.ascontiguousarray(inputs, self.vocab.token_dtype).tobytes())
        self._files["labels"].write(np.ascontiguousarray(labels, self.vocab.token_dtype).tobytes())
        for identifier, size in zip(identifiers, puzzle_sizes, strict=True):
            self._puzzle_identifiers.append(int(identifier))
            self._puzzle_indices.append(self._puzzle_indices[-1] + int(size))
        self._group_indices.append(len(self._puzzle_identifiers))

    def finish(self) -> None:
        """Write the five `.npy` arrays (tokens uint8, offsets and identifiers int32)."""
        shape = (self.num_examples, self.vocab.seq_len)
        for field, partial in self._partial.items():
            self._files[field].close()
            header = {
                "descr": np.lib.format.dtype_to_descr(self.vocab.token_dtype),
                "fortran_order": False,
                "shape": shape,
            }
            with array_path(self.split_dir, self.name, field).open("wb") as out:
                np.lib.format.write_array_header_1_0(out, header)
                with partial.open("rb") as raw:
                    shutil.copyfileobj(raw, out, length=1 << 24)
            partial.unlink()
        offsets = {
            "puzzle_identifiers": self._puzzle_identifiers,
            "puzzle_indices": self._puzzle_indices,
            "group_indices": self._group_indices,
        }
        for field, values in offsets.items():
            np.save(
                array_path(self.split_dir, self.name, field), np.asarray(values, dtype=np.int32)
            )


class DatasetWriter:
    """Creates a dataset directory split by split, set by set."""

    def __init__(self, out_dir: Path, vocab: Vocabulary) -> None:
        self.out_dir, self.vocab = out_dir, vocab
        self._sets: dict[str, dict[str, SetWriter]] = {}

    def open_set(self, split: str, name: str = "all") -> SetWriter:
        """A writer for set `name` of `split` (every reference builder uses the one set `all`)."""
        split_dir = self.out_dir / split
        split_dir.mkdir(parents=True, exist_ok=True)
        writer = SetWriter(split_dir, name, self.vocab)
        self._sets.setdefault(split, {})[name] = writer
        return writer

    def close(
        self, identifiers: Sequence[str], build_info: Mapping[str, object] | None = None
    ) -> None:
        """Finish every set, then write each split's `dataset.json` and `identifiers.json`.

        `identifiers[i]` names puzzle identifier i; identifier 0 is the blank (`<blank>`), so a
        Sudoku or Maze dataset, whose puzzles all share identifier 0, has one identifier.
        """
        if not identifiers or identifiers[0] != BLANK_IDENTIFIER:
            raise ValueError(f"identifiers must start with {BLANK_IDENTIFIER!r}")
        for split, sets in self._sets.items():
            for writer in sets.values():
                writer.finish()
            puzzles = sum(w.num_puzzles for w in sets.values())
            metadata = DatasetMetadata(
                pad_id=self.vocab.pad_id,
                ignore_label_id=self.vocab.ignore_label_id,
                blank_identifier_id=self.vocab.blank_identifier_id,
                vocab_size=self.vocab.vocab_size,
                seq_len=self.vocab.seq_len,
                num_puzzle_identifiers=len(identifiers),
                total_groups=sum(w.num_groups for w in sets.values()),
                mean_puzzle_examples=sum(w.num_examples for w in sets.values()) / max(puzzles, 1),
                sets=tuple(sets),
                total_puzzles=puzzles,
            )
            write_json(self.out_dir / split / METADATA_FILE, metadata.to_json_dict())
        write_json(self.out_dir / IDENTIFIERS_FILE, list(identifiers))
        if build_info is not None:
            write_json(self.out_dir / BUILD_INFO_FILE, dict(build_info))
