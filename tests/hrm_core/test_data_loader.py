"""The loaders: one puzzle per group per epoch, the reference's batches (a puzzle cut at the
batch boundary, shuffled inside), full batches only in training, padded evaluation, rank
shards that add up to the global batch, determinism and exact resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hrm_core_helpers import reference_fixture

from hrm_core.data import (
    IGNORE_LABEL,
    EvalLoader,
    LoaderPosition,
    PuzzleDataset,
    SudokuBuildOptions,
    TrainLoader,
    build_sudoku,
    reference_total_steps,
)
from hrm_doctor.errors import UserError


@pytest.fixture(scope="module")
def sudoku(tmp_path_factory) -> PuzzleDataset:
    """50 groups of 3 one-example puzzles (an original and 2 augmentations); 13 test puzzles."""
    out = tmp_path_factory.mktemp("loader") / "sudoku"
    build_sudoku(SudokuBuildOptions(box_size=2, train_size=50, test_size=13, num_aug=2), out)
    return PuzzleDataset.open(out, "train")


@pytest.fixture(scope="module")
def arc() -> PuzzleDataset:
    return PuzzleDataset.open(reference_fixture(), "train")


def take(loader, count: int) -> list:
    return list(itertools.islice(iter(loader), count))


def same_batches(first: list, second: list) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(a.inputs, b.inputs)
        and np.array_equal(a.labels, b.labels)
        and np.array_equal(a.puzzle_identifiers, b.puzzle_identifiers)
        and np.array_equal(a.example_indices, b.example_indices)
        for a, b in zip(first, second, strict=True)
    )


REFERENCE_BATCHES = (
    Path(__file__).parent / "fixtures" / "reference_sources" / "expected" / "arc_mini_batches.json"
)


def test_reference_sampling_gives_the_reference_batches(arc):
    """The reference's puzzle_dataset.py on reference-arc-mini (seed 5, batch 32, 2 epochs per
    pass): the puzzle of every example of every batch of two passes, cut where it cut."""
    expected = json.loads(REFERENCE_BATCHES.read_text())
    loader = TrainLoader(arc, global_batch_size=32, seed=5, epochs_per_pass=2)
    for batches in expected:
        assert [b.puzzle_identifiers.tolist() for b in loader.iter_pass()] == batches


def test_reference_sampling_cuts_at_the_boundary_and_shuffles_inside_a_puzzle(arc):
    data = arc.sets["all"]
    puzzle_of = np.repeat(np.arange(data.num_puzzles), np.diff(data.puzzle_indices))
    loader = TrainLoader(arc, global_batch_size=16, seed=3, epochs_per_pass=4)
    batches = list(loader.iter_pass())
    shuffled = cut = False
    for before, after in itertools.pairwise(batches):
        rows = before.example_indices
        puzzles = puzzle_of[rows]
        starts = np.flatnonzero(np.diff(puzzles, prepend=-1))  # each puzzle's run in the batch
        assert len(set(puzzles[starts].tolist())) == len(starts)  # one contiguous run each
        for run in np.split(rows, starts[1:]):
            assert len(set(run.tolist())) == len(run)  # a subset of the puzzle, no repeats
            shuffled |= bool(np.any(np.diff(run) < 0))
        last = puzzles[-1]
        size = data.puzzle_indices[last + 1] - data.puzzle_indices[last]
        if np.sum(puzzles == last) < size:  # the puzzle was cut at the batch boundary:
            cut = True  # the next batch does not carry on with its examples
            assert puzzle_of[after.example_indices[0]] != last or after.example_indices[0] in rows
    assert shuffled and cut


def test_each_epoch_draws_one_whole_puzzle_per_group(arc):
    """sampling=whole_puzzles: every example of the drawn puzzle, in order."""
    data = arc.sets["all"]
    puzzle_of = np.repeat(np.arange(data.num_puzzles), np.diff(data.puzzle_indices))
    group_of = np.repeat(np.arange(data.num_groups), np.diff(data.group_indices))
    loader = TrainLoader(arc, global_batch_size=8, seed=3, sampling="whole_puzzles")
    drawn = []
    for epoch in range(3):
        stream = loader.epoch_stream(0, epoch)
        puzzles = list(dict.fromkeys(puzzle_of[stream].tolist()))
        assert sorted(group_of[puzzles].tolist()) == list(range(data.num_groups))
        for p in puzzles:  # every example of the drawn puzzle, contiguous and in order
            rows = np.flatnonzero(puzzle_of[stream] == p)
            assert np.array_equal(stream[rows], np.arange(*data.puzzle_indices[p : p + 2]))
        drawn.append(puzzles)
    assert drawn[0] != drawn[1]  # a fresh order and fresh draws each epoch


@pytest.mark.parametrize(("epochs_per_pass", "expected"), [(1, 3), (2, 6), (3, 9)])
def test_a_pass_drops_its_incomplete_last_batch(sudoku, epochs_per_pass, expected):
    loader = TrainLoader(sudoku, global_batch_size=16, epochs_per_pass=epochs_per_pass)
    batches = list(loader.iter_pass())
    assert len(batches) == expected  # floor(50 * epochs / 16)
    assert all(b.global_effective_size == 16 and b.inputs.shape == (16, 16) for b in batches)
    assert loader.position.pass_index == 1 and loader.position.batch_in_pass == 0
    assert len(list(loader.iter_pass())) == expected


def test_batches_are_deterministic_under_the_seed(arc):
    first = take(TrainLoader(arc, global_batch_size=16, seed=7), 12)
    second = take(TrainLoader(arc, global_batch_size=16, seed=7), 12)
    other = take(TrainLoader(arc, global_batch_size=16, seed=8), 12)
    assert same_batches(first, second)
    assert not same_batches(first, other)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_together_see_exactly_the_global_batch(arc, world_size):
    whole = take(TrainLoader(arc, global_batch_size=32, seed=1), 25)
    shards = [
        take(TrainLoader(arc, global_batch_size=32, seed=1, rank=r, world_size=world_size), 25)
        for r in range(world_size)
    ]
    for step, batch in enumerate(whole):
        parts = [shard[step] for shard in shards]
        assert all(p.inputs.shape == (32 // world_size, 900) for p in parts)
        for field in ("inputs", "labels", "puzzle_identifiers", "example_indices"):
            joined = np.concatenate([getattr(p, field) for p in parts])
            assert np.array_equal(joined, getattr(batch, field))


@pytest.mark.parametrize("sampling", ["reference", "whole_puzzles"])
def test_resume_sees_the_same_batches(sudoku, arc, sampling):
    loader = TrainLoader(sudoku, global_batch_size=16, seed=2, sampling=sampling)
    take(loader, 7)  # crosses two pass boundaries (3 batches per pass)
    state = json.loads(json.dumps(loader.state_dict()))  # checkpoints store it as JSON
    expected = take(loader, 8)
    resumed = TrainLoader(sudoku, global_batch_size=16, seed=2, sampling=sampling)
    resumed.load_state_dict(state)
    assert resumed.position == LoaderPosition(
        **{k: state[k] for k in LoaderPosition.__dataclass_fields__}
    )
    assert same_batches(take(resumed, 8), expected)
    loader = TrainLoader(arc, global_batch_size=16, seed=2, sampling=sampling)
    take(loader, 5)  # mid-pass, puzzles of several examples cut at batch boundaries
    resumed = TrainLoader(arc, global_batch_size=16, seed=2, sampling=sampling)
    resumed.load_state_dict(json.loads(json.dumps(loader.state_dict())))
    assert same_batches(take(resumed, 6), take(loader, 6))
    other = "whole_puzzles" if sampling == "reference" else "reference"
    with pytest.raises(UserError, match=f"sampling was {sampling}, now {other}"):
        TrainLoader(arc, 16, seed=2, sampling=other).load_state_dict(loader.state_dict())


def test_resume_mid_pass_keeps_the_pass_boundary(arc):
    loader = TrainLoader(arc, global_batch_size=16, seed=4, epochs_per_pass=2)
    passes = [len(list(loader.iter_pass())) for _ in range(2)]
    loader = TrainLoader(arc, global_batch_size=16, seed=4, epochs_per_pass=2)
    head = list(itertools.islice(loader.iter_pass(), 3))
    resumed = TrainLoader(arc, global_batch_size=16, seed=4, epochs_per_pass=2)
    resumed.load_state_dict(loader.state_dict())
    assert len(head) + len(list(resumed.iter_pass())) == passes[0]
    assert len(list(resumed.iter_pass())) == passes[1]


def test_resume_with_another_world_size_and_refusals(sudoku):
    loader = TrainLoader(sudoku, global_batch_size=16, seed=2)
    take(loader, 4)
    state = loader.state_dict()
    expected = take(loader, 3)
    for rank in range(2):
        shard = TrainLoader(sudoku, global_batch_size=16, seed=2, rank=rank, world_size=2)
        shard.load_state_dict(state)
        got = take(shard, 3)
        assert all(
            np.array_equal(g.inputs, e.inputs[rank * 8 : (rank + 1) * 8])
            for g, e in zip(got, expected, strict=True)
        )
    with pytest.raises(UserError, match="seed"):
        TrainLoader(sudoku, global_batch_size=16, seed=9).load_state_dict(state)
    with pytest.raises(UserError, match="changed"):
        TrainLoader(sudoku, global_batch_size=16, seed=2).load_state_dict(
            {**state, "set_groups": [49]}
        )


def test_evaluation_covers_every_example_once_with_a_padded_last_batch(sudoku):
    test = PuzzleDataset.open(sudoku.path, "test")
    meta = test.metadata
    whole = list(EvalLoader(test, global_batch_size=4))
    assert len(whole) == len(EvalLoader(test, global_batch_size=4)) == 4
    seen = np.concatenate([b.example_indices for b in whole])
    assert np.array_equal(seen[:13], np.arange(13)) and np.all(seen[13:] == -1)
    assert [b.global_effective_size for b in whole] == [4, 4, 4, 1]
    last = whole[-1]
    assert np.all(last.inputs[1:] == meta.pad_id) and np.all(last.labels[1:] == IGNORE_LABEL)
    assert np.all(last.puzzle_identifiers[1:] == meta.blank_identifier_id)
    shards = [list(EvalLoader(test, 4, rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(whole):
        joined = np.concatenate([shards[r][step].inputs for r in range(2)])
        assert np.array_equal(joined, batch.inputs)
        assert shards[1][step].global_effective_size == batch.global_effective_size
    capped = list(EvalLoader(test, global_batch_size=4, max_examples=5))
    assert [b.global_effective_size for b in capped] == [4, 1]


def test_ignore_label_becomes_minus_100(arc):
    (batch,) = take(TrainLoader(arc, global_batch_size=8, seed=0), 1)
    raw = np.asarray(arc.sets["all"].labels[batch.example_indices], dtype=np.int32)
    assert np.array_equal(batch.labels == IGNORE_LABEL, raw == arc.metadata.ignore_label_id)
    assert np.array_equal(batch.labels[raw != 0], raw[raw != 0])
    tensors = batch.to_torch()
    assert str(tensors["labels"].dtype) == "torch.int64"
    assert str(tensors["inputs"].dtype) == "torch.int32"
    assert tuple(tensors["puzzle_identifiers"].shape) == (8,)


def test_a_batch_no_pass_can_fill_is_a_user_error(sudoku):
    with pytest.raises(UserError, match="global_batch_size=64"):
        TrainLoader(sudoku, global_batch_size=64)
    assert len(list(TrainLoader(sudoku, 64, epochs_per_pass=2).iter_pass())) == 1
    with pytest.raises(UserError, match="world_size"):
        TrainLoader(sudoku, global_batch_size=10, world_size=4)


def test_reference_step_count(sudoku, arc):
    assert reference_total_steps(sudoku.metadata, epochs=10, global_batch_size=16) == 31
    assert reference_total_steps(arc.metadata, epochs=2, global_batch_size=32) == 9
    passes = [
        len(list(TrainLoader(arc, 32, seed=s, epochs_per_pass=2).iter_pass())) for s in range(3)
    ]
    assert all(abs(p - 9) <= 2 for p in passes)  # the estimate is what a pass yields, give or take
