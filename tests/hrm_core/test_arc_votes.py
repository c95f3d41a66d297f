"""ARC scoring: predictions on augmented copies are mapped back and voted on; pass@k per task
and the submission JSON follow the reference's evaluate.py + arc_eval.ipynb (hand-built votes)."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_core.data.arc import Variant, encode_pair
from hrm_core.data.arc_votes import ArcVotes, Augmentation, crop, grid_origin
from hrm_doctor.errors import UserError

GRID = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
RIGHT = np.array([[7, 7], [0, 7]], dtype=np.uint8)
WRONG = np.array([[7]], dtype=np.uint8)
COLOURS = np.array([0, 3, 1, 2, 5, 4, 7, 6, 9, 8], dtype=np.uint8)


def canvas(grid: np.ndarray, offset=(0, 0)) -> np.ndarray:
    return encode_pair((grid, grid), offset)[0]


def augmented(name: str, transform: int | None, inp: np.ndarray, pred: np.ndarray, offset=(0, 0)):
    """The name, input canvas and prediction canvas of one augmented copy of task `name`."""
    variant = Variant(transform, COLOURS if transform is not None else None)
    full = variant.name(type("T", (), {"name": name})())
    return full, canvas(variant.apply(inp), offset), canvas(variant.apply(pred), offset)


def test_crop_follows_the_reference_notebook():
    assert np.array_equal(crop(canvas(GRID)), GRID)
    assert np.array_equal(crop(canvas(GRID, (5, 7)), (5, 7)), GRID)
    assert grid_origin(canvas(GRID, (5, 7))) == (5, 7)
    ragged = canvas(np.ones((3, 4), np.uint8)).reshape(30, 30).copy()
    ragged[1, 2] = 1  # an EOS inside row 1: the rectangle narrows to 2 columns from there
    assert crop(ragged).shape == (3, 2)  # 3x2 (area 6) beats 1x4 and 2x2
    ragged[1, 0] = 0  # row 1 starts with padding: only row 0 is left
    assert crop(ragged).shape == (1, 4)
    assert crop(np.zeros(900, np.uint8)).shape == (0, 0)


def test_augmentations_invert_from_their_names():
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 10, (4, 7)).astype(np.uint8)
    for transform in range(8):
        variant = Variant(transform, COLOURS)
        aug = Augmentation.from_name(f"0a1d4ef5_t{transform}_{''.join(map(str, COLOURS))}")
        assert (aug.task, aug.transform) == ("0a1d4ef5", transform)
        assert np.array_equal(aug.invert(variant.apply(grid)), grid)
    assert Augmentation.from_name("AboveBelow1").is_original
    assert Augmentation.from_name("odd_name_t9_123").task == "odd_name_t9_123"


def scored(votes: ArcVotes) -> tuple[float, float]:
    votes.check()
    result = votes.pass_at((1, 2))
    return result[1], result[2]


def test_votes_rank_by_count_then_mean_q():
    votes = ArcVotes()
    votes.add_truth("task", GRID, RIGHT)
    for transform, pred, q in [(None, WRONG, 0.8), (1, WRONG, 0.8), (6, WRONG, 0.8),
                               (2, RIGHT, 0.9), (7, RIGHT, 0.9)]:  # fmt: skip
        votes.add_prediction(*augmented("task", transform, GRID, pred, (0, 0)), q)
    assert scored(votes) == (0.0, 1.0)  # 3 votes for the wrong grid, 2 for the right one
    votes.add_prediction(*augmented("task", 3, GRID, RIGHT, (4, 2)), 0.0)  # translated copy
    assert scored(votes) == (0.0, 1.0)  # 3:3, and the wrong grid's mean q (0.8) beats 0.6
    votes.add_prediction(*augmented("task", 4, GRID, RIGHT), 0.0)
    assert scored(votes) == (1.0, 1.0)  # 4:3
    (attempts,) = votes.submission()["task"]
    assert attempts == {"attempt_1": RIGHT.tolist(), "attempt_2": WRONG.tolist()}


def test_ties_in_votes_and_q_keep_the_first_seen():
    votes = ArcVotes()
    votes.add_truth("task", GRID, RIGHT)
    votes.add_prediction(*augmented("task", None, GRID, WRONG), 0.5)
    votes.add_prediction(*augmented("task", 5, GRID, RIGHT), 0.5)
    assert scored(votes) == (0.0, 1.0)


def test_a_task_scores_the_fraction_of_its_test_outputs():
    votes = ArcVotes()
    other = GRID[:1]
    votes.add_truth("two", GRID, RIGHT)
    votes.add_truth("two", other, RIGHT)
    votes.add_truth("one", GRID, WRONG)
    votes.add_prediction(*augmented("two", 2, GRID, RIGHT), 0.5)
    votes.add_prediction(*augmented("two", 2, other, WRONG), 0.5)
    votes.add_prediction(*augmented("one", None, GRID, RIGHT), 0.5)
    assert scored(votes) == (0.25, 0.25)  # (1/2 + 0) / 2 tasks
    submission = votes.submission()
    assert [a["attempt_1"] for a in submission["two"]] == [RIGHT.tolist(), WRONG.tolist()]
    assert submission["two"][0]["attempt_2"] == RIGHT.tolist()  # one candidate: repeated


def test_merge_adds_the_votes_of_other_ranks():
    rank0, rank1 = ArcVotes(), ArcVotes()
    rank0.add_truth("task", GRID, RIGHT)
    rank0.add_prediction(*augmented("task", None, GRID, WRONG), 0.9)
    rank1.add_prediction(*augmented("task", 1, GRID, RIGHT), 0.1)
    rank1.add_prediction(*augmented("task", 2, GRID, RIGHT), 0.1)
    rank0.merge(rank1)
    assert scored(rank0) == (1.0, 1.0)


def test_a_prediction_that_maps_to_no_test_input_is_an_error():
    votes = ArcVotes()
    votes.add_truth("task", GRID, RIGHT)
    name, inp, pred = augmented("task", 1, GRID, RIGHT)
    votes.add_prediction(name.replace("_t1_", "_t2_"), inp, pred, 0.5)  # a wrong name
    with pytest.raises(UserError, match="does not map back to any of its test inputs"):
        votes.check()
    assert votes.submission() == {"task": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}


def test_the_true_outputs_of_every_augmented_copy_score_one_on_reference_data():
    """On data built by the reference builder, predicting each copy's label inverts back to
    the task's answer: pass@1 = 1 (and a constant wrong grid scores 0)."""
    from hrm_core_helpers import reference_fixture

    from hrm_core.data import PuzzleDataset
    from hrm_core.trainer.arc_scoring import ArcScoring
    from hrm_core.trainer.distributed import DistInfo

    test = PuzzleDataset.open(reference_fixture(), "test")
    data = test.sets["all"]
    rows = np.arange(data.num_examples)
    for preds, expected in ((np.asarray(data.labels), 1.0), (np.asarray(data.inputs) * 0, 0.0)):
        arc = ArcScoring(test)
        arc.add("all", rows, preds, np.full(rows.size, 0.5))
        result = arc.result(DistInfo(), None)
        assert result["eval/arc/pass@1"] == result["eval/arc/pass@2"] == expected
        assert result["eval/arc/tasks"] == 20
