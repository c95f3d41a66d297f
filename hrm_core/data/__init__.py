"""HRM datasets: seeded builders (Sudoku, Maze, ARC) and loaders, in the reference on-disk format.

Build with `python -m hrm_core.data build sudoku|maze|arc --out DIR`; train with
`PuzzleDataset.open(DIR, "train")` and `TrainLoader`, evaluate with `EvalLoader`.
"""

from hrm_core.data.arc import ArcBuildOptions, build_arc
from hrm_core.data.build import (
    BuildOptions,
    build_dataset,
    ensure_dataset,
    make_build_options,
)
from hrm_core.data.dataset import PuzzleDataset, PuzzleSet, open_splits
from hrm_core.data.loader import (
    Batch,
    EvalLoader,
    LoaderPosition,
    TrainLoader,
    reference_total_steps,
)
from hrm_core.data.maze import MazeBuildOptions, build_maze
from hrm_core.data.metadata import IGNORE_LABEL, DatasetMetadata
from hrm_core.data.sudoku import SudokuBuildOptions, build_sudoku

__all__ = [
    "IGNORE_LABEL",
    "ArcBuildOptions",
    "Batch",
    "BuildOptions",
    "DatasetMetadata",
    "EvalLoader",
    "LoaderPosition",
    "MazeBuildOptions",
    "PuzzleDataset",
    "PuzzleSet",
    "SudokuBuildOptions",
    "TrainLoader",
    "build_arc",
    "build_dataset",
    "build_maze",
    "build_sudoku",
    "ensure_dataset",
    "make_build_options",
    "open_splits",
    "reference_total_steps",
]
