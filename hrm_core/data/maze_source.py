"""Maze-30x30-Hard from its CSV files, as the reference builder writes them.

`build maze --source DIR` reads `DIR/train.csv` and `DIR/test.csv` (csv_source; cells in the
charset "# SGo": wall, open, start, goal, path), draws `subsample_size` training mazes and, with
`--dihedral-aug`, adds the 8 dihedral copies of each training maze. Tokens are the charset
shifted by one (pad 0). The subsample is drawn on numpy's legacy generator seeded with `seed`:
the same arrays as the reference run after `np.random.seed(seed)`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from hrm_core.data.csv_source import as_grids, read_puzzles, split_file, subsample
from hrm_core.data.grids import NUM_DIHEDRAL, dihedral
from hrm_core.data.progress import SILENT, Progress
from hrm_core.data.writer import DatasetWriter, Vocabulary
from hrm_doctor.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from hrm_core.data.maze import MazeBuildOptions

CHARSET = "# SGo"
_TOKENS = np.zeros(256, dtype=np.uint8)
_TOKENS[np.frombuffer(CHARSET.encode(), dtype=np.uint8)] = np.arange(1, len(CHARSET) + 1)


def build_maze_source(
    options: MazeBuildOptions, out_dir: Path, progress: Progress = SILENT
) -> None:
    """Write the train and test splits of the CSV source into `out_dir`."""
    assert options.source is not None
    rng = np.random.RandomState(options.seed)
    splits = {}
    for split in ("train", "test"):
        rows = read_puzzles(split_file(options.source, split), CHARSET, cells=None)
        splits[split] = rows
    sides = {int(round(len(r.questions[0]) ** 0.5)) for r in splits.values() if r.questions}
    if len(sides) > 1:
        raise UserError(f"{splits['test'].path}: grid size differs from train.csv's")
    side = sides.pop() if sides else options.size
    writer = DatasetWriter(out_dir, Vocabulary(vocab_size=len(CHARSET) + 1, seq_len=side * side))
    for split, rows in splits.items():
        mazes = _TOKENS[as_grids(rows.questions, side)]
        paths = _TOKENS[as_grids(rows.answers, side)]
        keep = np.arange(len(mazes))
        if split == "train":
            keep = subsample(len(mazes), options.subsample_size, rng)
        transforms = range(NUM_DIHEDRAL) if options.dihedral_aug and split == "train" else [0]
        set_writer = writer.open_set(split)
        for index in progress.track(keep, len(keep), f"maze {split} ({rows.path.name})"):
            inputs = np.stack([dihedral(mazes[index], t).ravel() for t in transforms])
            labels = np.stack([dihedral(paths[index], t).ravel() for t in transforms])
            set_writer.add_group([0] * len(transforms), inputs, labels, [1] * len(transforms))
    writer.close(["<blank>"], {"builder": asdict(options)})
