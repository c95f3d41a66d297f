"""Puzzle CSV files in the layout of the published Sudoku and Maze sets (the reference's input).

`sapientinc/sudoku-extreme`, Sudoku-Hard and `sapientinc/maze-30x30-hard-1k` ship `train.csv`
and `test.csv` with a header and the columns `source,question,answer,rating`: one puzzle per row,
question and answer as strings of one character per cell, row by row ('.' or '0' for a Sudoku
blank; "# SGo" for maze wall, open, start, goal, path). Every malformed row is a one-line
UserError naming the file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hrm_doctor.errors import UserError

COLUMNS = ("source", "question", "answer", "rating")
SPLIT_FILES = {"train": "train.csv", "test": "test.csv"}


@dataclass(frozen=True)
class CsvPuzzles:
    """The rows of one CSV file that passed the filter, as byte strings of equal length."""

    path: Path
    questions: list[bytes]
    answers: list[bytes]
    ratings: list[str]


def split_file(source: str | Path, split: str) -> Path:
    """`<source>/<split>.csv`; a missing directory or file is a UserError."""
    root = Path(source)
    if not root.is_dir():
        raise UserError(f"{root}: source directory not found (expected train.csv and test.csv)")
    path = root / SPLIT_FILES[split]
    if not path.is_file():
        raise UserError(f"{path}: file not found (a source holds train.csv and test.csv)")
    return path


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            if next(reader, None) is None:
                raise UserError(f"{path}:1: empty file (expected a header {','.join(COLUMNS)})")
            for row in reader:
                yield reader.line_num, row
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None


def read_puzzles(
    path: Path,
    alphabet: str,
    cells: int | None = None,
    min_rating: int | None = None,
    blank: str | None = None,
) -> CsvPuzzles:
    """Read `path`: every question and answer of `cells` characters (None: the first row's
    length, a square) from `alphabet`; keep rows rated >= `min_rating` when given. `blank` in
    a question is read as '0' (the reference's '.' for an empty Sudoku cell)."""
    questions, answers, ratings = [], [], []
    allowed = set(alphabet)
    for line, row in _rows(path):
        if len(row) != len(COLUMNS):
            raise UserError(
                f"{path}:{line}: expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), "
                f"got {len(row)}"
            )
        _, question, answer, rating = row
        if blank is not None:
            question = question.replace(blank, "0")
        if cells is None:
            cells = len(question)
            if int(round(cells**0.5)) ** 2 != cells:
                raise UserError(f"{path}:{line}: question of {cells} cells is not a square grid")
        for column, text in (("question", question), ("answer", answer)):
            if len(text) != cells:
                raise UserError(
                    f"{path}:{line}: {column} has {len(text)} characters, expected {cells}"
                )
            bad = set(text) - allowed
            if bad:
                raise UserError(
                    f"{path}:{line}: {column} holds {sorted(bad)[0]!r}, not one of {alphabet!r}"
                )
        if min_rating is not None:
            try:
                if int(rating) < min_rating:
                    continue
            except ValueError:
                raise UserError(f"{path}:{line}: rating {rating!r} is not an integer") from None
        questions.append(question.encode())
        answers.append(answer.encode())
        ratings.append(rating)
    return CsvPuzzles(path, questions, answers, ratings)


def as_grids(rows: list[bytes], side: int) -> np.ndarray:
    """(rows, side, side) uint8 character codes."""
    flat = np.frombuffer(b"".join(rows), dtype=np.uint8)
    return flat.reshape(len(rows), side, side)


def subsample(count: int, size: int | None, rng: np.random.RandomState) -> np.ndarray:
    """Row indices kept for training: all, or `size` drawn without replacement (reference)."""
    if size is None or size >= count:
        return np.arange(count)
    return rng.choice(count, size=size, replace=False)
