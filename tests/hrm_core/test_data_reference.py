"""Data built by the reference HRM scripts loads as users bring it (shared/fixtures), and
damaged dataset directories fail with one line naming the file and what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hrm_core_helpers import reference_fixture

from hrm_core.data import (
    IGNORE_LABEL,
    EvalLoader,
    PuzzleDataset,
    TrainLoader,
    open_splits,
)
from hrm_doctor.errors import UserError


def test_reference_metadata_and_shapes():
    splits = open_splits(reference_fixture())
    train, test = splits["train"], splits["test"]
    meta = train.metadata
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers) == (12, 900, 161)
    assert (meta.pad_id, meta.ignore_label_id, meta.blank_identifier_id) == (0, 0, 0)
    assert meta.sets == ("all",) and meta.total_puzzles is None
    assert (meta.total_groups, meta.mean_puzzle_examples) == (40, 3.725)
    data = train.sets["all"]
    assert data.inputs.shape == data.labels.shape == (596, 900)
    assert (data.num_puzzles, data.num_groups) == (160, 40)
    assert (test.metadata.total_groups, test.num_examples) == (20, 80)
    assert train.identifiers is not None and train.identifiers[0] == "<blank>"
    assert len(train.identifiers) == 161


def test_reference_batches_for_training_and_evaluation():
    train = PuzzleDataset.open(reference_fixture(), "train")
    batch = next(iter(TrainLoader(train, global_batch_size=32, seed=0)))
    assert batch.inputs.shape == batch.labels.shape == (32, 900)
    assert batch.inputs.dtype == np.int32 and int(batch.inputs.max()) < 12
    assert np.all((batch.labels == IGNORE_LABEL) | ((batch.labels >= 1) & (batch.labels < 12)))
    assert np.all((batch.puzzle_identifiers >= 1) & (batch.puzzle_identifiers < 161))
    test = PuzzleDataset.open(reference_fixture(), "test")
    batches = list(EvalLoader(test, global_batch_size=32))
    assert [b.global_effective_size for b in batches] == [32, 32, 16]


@pytest.fixture
def copy(tmp_path) -> Path:
    """A writable copy of the reference fixture to damage."""
    out = tmp_path / "data"
    shutil.copytree(reference_fixture(), out)
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    out.chmod(0o755)
    return out


def error_of(path: Path, split: str = "train") -> str:
    with pytest.raises(UserError) as info:
        PuzzleDataset.open(path, split)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory_and_split(tmp_path, copy):
    assert "dataset directory not found" in error_of(tmp_path / "nowhere")
    assert "build one with" in error_of(tmp_path / "nowhere")
    assert "dataset.json: file not found" in error_of(copy, "valid")


def test_missing_and_corrupted_arrays(copy):
    (copy / "train/all__labels.npy").unlink()
    assert error_of(copy).endswith("train/all__labels.npy: file not found")
    inputs = copy / "train/all__inputs.npy"
    inputs.write_bytes(inputs.read_bytes()[:1000])  # truncated
    shutil.copy(copy / "test/all__labels.npy", copy / "train/all__labels.npy")
    assert "all__inputs.npy: not a readable .npy array" in error_of(copy)


def test_inconsistent_arrays(copy):
    labels = np.load(copy / "train/all__labels.npy")
    np.save(copy / "train/all__labels.npy", labels[:, :800])
    assert "all__labels.npy: shape (596, 800) is not (examples, seq_len=900)" in error_of(copy)
    np.save(copy / "train/all__labels.npy", labels)
    identifiers = np.load(copy / "train/all__puzzle_identifiers.npy")
    identifiers[3] = 500
    np.save(copy / "train/all__puzzle_identifiers.npy", identifiers)
    assert "puzzle_identifiers.npy: value 500 outside [0, num_puzzle_identifiers=161)" in error_of(
        copy
    )
    identifiers[3] = 4
    np.save(copy / "train/all__puzzle_identifiers.npy", identifiers)
    indices = np.load(copy / "train/all__puzzle_indices.npy")
    indices[-1] = 9999
    np.save(copy / "train/all__puzzle_indices.npy", indices)
    assert "must run from 0 to 596 examples" in error_of(copy)


def test_bad_metadata(copy):
    meta_path = copy / "train/dataset.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text("{not json")
    assert "train/dataset.json:1:2: invalid JSON" in error_of(copy)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "seq_len"}))
    assert error_of(copy).endswith("dataset.json: missing key 'seq_len'")
    meta_path.write_text(json.dumps({**meta, "vocab_size": "12"}))
    assert "key 'vocab_size' must be a non-negative integer" in error_of(copy)
    meta_path.write_text(json.dumps({**meta, "total_groups": 41}))
    assert "total_groups is 41 but the group_indices arrays hold 40" in error_of(copy)
    meta_path.write_text(json.dumps({**meta, "vocab_size": 10}))
    assert "all__inputs.npy: value 11 outside [0, vocab_size=10)" in error_of(copy)


def test_splits_that_disagree(copy):
    meta_path = copy / "test/dataset.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "vocab_size": 13}))
    with pytest.raises(UserError, match="test/dataset.json: vocab_size=13 differs from vocab"):
        open_splits(copy)
    (copy / "identifiers.json").write_text(json.dumps(["<blank>"] * 100))
    assert "identifiers.json: 100 names but dataset.json says num_puzzle_identifiers=161" in (
        error_of(copy)
    )
