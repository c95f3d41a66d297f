"""Grid symmetries shared by the Maze and ARC builders: the 8 dihedral transforms of a square.

Transform ids follow the names written into ARC puzzle identifiers (`<task>_t<id>_<colours>`):
0 identity, 1-3 rotations by 90/180/270 degrees (counter-clockwise, as `np.rot90`), 4 left-right
flip, 5 up-down flip, 6 transpose, 7 anti-transpose. `inverse_dihedral` undoes one, so an
evaluator can map predictions on an augmented puzzle back to the original.
"""

from __future__ import annotations

import numpy as np

NUM_DIHEDRAL = 8

_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grid: np.ndarray, transform_id: int) -> np.ndarray:
    """Apply dihedral transform `transform_id` (0..7) to a 2-D grid; returns a new array."""
    match transform_id:
        case 0:
            out = grid
        case 1 | 2 | 3:
            out = np.rot90(grid, k=transform_id)
        case 4:
            out = np.fliplr(grid)
        case 5:
            out = np.flipud(grid)
        case 6:
            out = grid.T
        case 7:
            out = np.rot90(grid, k=2).T
        case _:
            raise ValueError(f"dihedral transform id must be in 0..7, got {transform_id}")
    return np.ascontiguousarray(out)


def inverse_dihedral(transform_id: int) -> int:
    """The transform id that undoes `transform_id`."""
    return _INVERSE[transform_id]
