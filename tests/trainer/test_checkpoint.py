"""Checkpoints: atomic (a kill mid-save leaves the previous one loadable), found, pruned,
superseded on rollback; RNG round trip; one-line mismatch messages."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_core.trainer import checkpoint as ckpt
from hrm_doctor.errors import UserError

from .conftest import run_command

HELPER = Path(__file__).with_name("checkpoint_killer.py")


def save(run_dir: Path, step: int, **state) -> Path:
    return ckpt.save_checkpoint(
        run_dir,
        step,
        rank=0,
        world_size=1,
        barrier=lambda: None,
        state=lambda: {"hot": {"lr": 1e-3}, **state},
        model=lambda: {"w": torch.full((3,), float(step))},
        optimizers=lambda: {"model": {"state": {}}, "puzzle_emb": None},
        rank_state={"rng": ckpt.capture_rng(torch.device("cpu")), "carry": None},
    )


def test_round_trip_and_layout(tmp_path):
    path = save(tmp_path, 7, data={"seq_len": 16})
    assert path == tmp_path / "checkpoints" / "step_00000007"
    names = sorted(p.name for p in path.iterdir())
    assert names == ["model.pt", "optimizers.pt", "rank_00000.pt", "state.json"]
    loaded = ckpt.load_checkpoint(path, 0, torch.device("cpu"))
    assert loaded.step == 7 and loaded.state["data"] == {"seq_len": 16}
    assert torch.equal(loaded.model["w"], torch.full((3,), 7.0))
    assert loaded.rank_state is not None and loaded.rank_state["carry"] is None
    assert ckpt.load_checkpoint(path, 3, torch.device("cpu")).rank_state is None  # a new rank


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    result = run_command([sys.executable, str(HELPER), str(tmp_path)], timeout=120)
    assert result.returncode == -9, result.stderr  # SIGKILL halfway through model.pt of step 2
    root = tmp_path / "checkpoints"
    assert (root / ".partial-step_00000002").is_dir()  # the torn save, never renamed in
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]
    assert ckpt.resolve_resume("auto", tmp_path) == root / "step_00000001"
    loaded = ckpt.load_checkpoint(root / "step_00000001", 0, torch.device("cpu"))
    assert torch.equal(loaded.model["w"], torch.full((256, 256), 1.0))
    save(tmp_path, 2)  # the next save cleans the torn one up and succeeds
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1, 2]
    assert not (root / ".partial-step_00000002").exists()


def test_a_crash_just_before_the_rename_commits_nothing(tmp_path, monkeypatch):
    save(tmp_path, 1)

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(ckpt.os, "rename", crash)
    with pytest.raises(OSError):
        save(tmp_path, 2)
    monkeypatch.undo()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]


def test_incomplete_directories_are_not_checkpoints(tmp_path):
    save(tmp_path, 1)
    fake = tmp_path / "checkpoints" / "step_00000009"
    fake.mkdir()
    (fake / "state.json").write_text("{}")
    damaged = save(tmp_path, 5)
    (damaged / "rank_00000.pt").unlink()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]


def test_resume_resolution(tmp_path):
    assert ckpt.resolve_resume("auto", tmp_path) is None
    assert ckpt.resolve_resume("never", tmp_path) is None
    save(tmp_path, 3)
    newest = save(tmp_path, 10)
    assert ckpt.resolve_resume("auto", tmp_path) == newest
    assert ckpt.resolve_resume(str(tmp_path), tmp_path / "other") == newest  # a run dir
    older = tmp_path / "checkpoints" / "step_00000003"
    assert ckpt.resolve_resume(str(older), tmp_path) == older
    with pytest.raises(UserError, match="no such checkpoint or run directory"):
        ckpt.resolve_resume(str(tmp_path / "nope"), tmp_path)
    with pytest.raises(UserError, match="not a complete checkpoint"):
        ckpt.resolve_resume(str(tmp_path / "checkpoints"), tmp_path / "x")


def test_prune_keeps_the_newest(tmp_path):
    for step in (1, 2, 3, 4):
        save(tmp_path, step)
    ckpt.prune(tmp_path, 2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    ckpt.prune(tmp_path, None)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]


def test_a_rollback_moves_newer_checkpoints_aside(tmp_path):
    for step in (10, 20, 30):
        save(tmp_path, step)
    moved = ckpt.supersede_after(tmp_path, 10)
    assert len(moved) == 2
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [10]  # auto resumes the new branch
    kept = sorted(p.name for p in (tmp_path / "checkpoints" / "superseded").iterdir())
    assert [k.split(".")[0] for k in kept] == ["step_00000020", "step_00000030"]
    save(tmp_path, 10)  # re-saving an existing step moves the old one aside too
    assert len(list((tmp_path / "checkpoints" / "superseded").iterdir())) == 3


def test_rng_states_round_trip():
    state = ckpt.capture_rng(torch.device("cpu"))
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.restore_rng(state, torch.device("cpu"))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_mismatch_messages_are_one_line_naming_what_differs(tmp_path):
    saved = {
        "vocab_size": 12,
        "seq_len": 900,
        "num_puzzle_identifiers": 961,
        "puzzle_emb_ndim": 512,
    }
    now = dict(saved, num_puzzle_identifiers=1200)
    message = ckpt.data_mismatch(tmp_path, saved, now, "data/arc")
    assert message is not None and "\n" not in message
    assert "puzzle-embedding rows (num_puzzle_identifiers) is 961 in the checkpoint" in message
    assert "but 1200 for the data at data/arc" in message
    assert ckpt.data_mismatch(tmp_path, saved, dict(saved), "d") is None
    seq = ckpt.data_mismatch(tmp_path, saved, dict(saved, seq_len=81), "d")
    assert "seq_len is 900 in the checkpoint but 81" in seq
    shapes = ckpt.shape_mismatch(tmp_path, {"a": torch.zeros(2, 3)}, {"a": torch.zeros(2, 4)})
    assert "a has shape (2, 3) in the checkpoint, (2, 4) in this model" in shapes
    assert "missing b" in ckpt.shape_mismatch(tmp_path, {}, {"b": torch.zeros(1)})
