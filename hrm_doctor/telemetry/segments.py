"""What the reader keeps of a run's files: segments (one file of one rank's writer session),
sessions, and the blocks of rows decoded from them (telemetry/reader.py, telemetry/stream.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(slots=True)
class Block:
    """Scalar rows of one key set, decoded from one frame."""

    rank: int
    session: int
    steps: np.ndarray  # int64 [n]
    times: np.ndarray  # float64 [n]
    keys: tuple[str, ...]
    values: np.ndarray  # float32 [n, k]


# Small frames are joined into blocks of about this many rows; a frame this big stays alone (no
# copy: joining large frames would only add a pass over the data).
JOIN_ROWS = 4096


class ScalarRun:
    """Scalar frames of one key set read in a row, joined into one block when the run ends."""

    __slots__ = ("keys", "rows", "steps", "times", "values")

    def __init__(self) -> None:
        self.keys: tuple[str, ...] | None = None
        self.rows = 0
        self.steps: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def add(self, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
        self.rows += len(steps)
        self.steps.append(steps)
        self.times.append(times)
        self.values.append(values)

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.steps) == 1:
            out = (self.steps[0], self.times[0], self.values[0])
        else:
            out = (
                np.concatenate(self.steps),
                np.concatenate(self.times),
                np.concatenate(self.values),
            )
        self.steps, self.times, self.values = [], [], []
        self.rows = 0
        return out


@dataclass(slots=True)
class TensorBlock:
    rank: int
    session: int
    name: str
    steps: np.ndarray
    arrays: list[np.ndarray]


@dataclass(slots=True)
class Session:
    rank: int
    session: int
    header: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] | None = None
    first_step: int | None = None
    last_step: int | None = None
    last_time: float | None = None

    @property
    def branch_step(self) -> int | None:
        """The step from which this session supersedes the rank's earlier sessions."""
        candidates = [
            s for s in (self.header.get("resume_from_step"), self.first_step) if s is not None
        ]
        return min(candidates) if candidates else None


@dataclass(slots=True)
class Segment:
    path: Path
    rank: int
    session: int
    part: int
    offset: int = 0
    size_seen: int = -1
    keys: dict[int, tuple[str, ...]] = field(default_factory=dict)
    tensors: dict[int, str] = field(default_factory=dict)
    bad_at: int | None = None  # offset of a frame that is complete on disk but fails to decode
