"""The control channel: request parsing and bounds, cheap polling, acks, handled-once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hrm_core.trainer.control import (
    HOT_KEYS,
    ControlChannel,
    HotParams,
    Request,
    parse_override,
    parse_request,
)


def write_request(run_dir: Path, request_id: str, overrides, **fields) -> Path:
    """What the doctor does: write a temp file in the same directory, then rename it in."""
    requests = run_dir / "control" / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    body = {"id": request_id, "overrides": overrides, "finding_id": None, "requested_at": 1.0}
    body.update(fields)
    tmp = requests / f".{request_id}.tmp"
    tmp.write_text(json.dumps(body))
    os.replace(tmp, requests / f"{request_id}.json")
    return requests / f"{request_id}.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=5e-05", ("lr", 5e-05)),
        ("lr = 1", ("lr", 1.0)),
        ("grad_clip_norm=null", ("grad_clip_norm", None)),
        ("grad_clip_norm=1.0", ("grad_clip_norm", 1.0)),
        ("arch.halt_exploration_prob=0", ("arch.halt_exploration_prob", 0.0)),
        ("weight_decay=10", ("weight_decay", 10.0)),
        ("puzzle_emb_weight_decay=0", ("puzzle_emb_weight_decay", 0.0)),
        ("puzzle_emb_lr=0.01", ("puzzle_emb_lr", 0.01)),
    ],
)
def test_hot_overrides_parse(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("lr=0", "lr=0.0: out of bounds (0, 1]"),
        ("lr=2", "lr=2.0: out of bounds (0, 1]"),
        ("lr=nan", "lr=nan: must be finite"),
        ("lr=abc", "value 'abc' is not a number"),
        ("lr=null", "lr: null is not allowed"),
        ("weight_decay=-1", "out of bounds [0, 10]"),
        ("arch.halt_exploration_prob=1.5", "out of bounds [0, 1]"),
        ("grad_clip_norm=0", "out of bounds (0, 1e+06]"),
        ("arch.hidden_size=32", "'arch.hidden_size' is not a hot key (a restart is needed)"),
        ("+lr=1e-4", "'+lr' is not a hot key"),
        ("lr", "expected 'key=value'"),
        (3, "expected 'key=value'"),
    ],
)
def test_bad_overrides_say_why(text, reason):
    with pytest.raises(ValueError, match=None) as info:
        parse_override(text)
    assert reason in str(info.value)


def test_hot_keys_are_the_design_whitelist():
    assert set(HOT_KEYS) == {
        "lr",
        "puzzle_emb_lr",
        "weight_decay",
        "puzzle_emb_weight_decay",
        "grad_clip_norm",
        "arch.halt_exploration_prob",
    }


def test_a_request_is_all_or_nothing():
    good = parse_request(json.dumps({"id": "a", "overrides": ["lr=1e-4", "grad_clip_norm=1"]}), "a")
    assert good.error is None and good.values == {"lr": 1e-4, "grad_clip_norm": 1.0}
    bad = parse_request(json.dumps({"id": "b", "overrides": ["lr=1e-4", "lr=9"]}), "b")
    assert bad.values == {} and "out of bounds" in bad.error
    twice = parse_request(json.dumps({"id": "c", "overrides": ["lr=1e-4", "lr=2e-4"]}), "c")
    assert twice.error == "'lr' is set twice"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "unparseable JSON"),
        ("[1, 2]", "a request must be a JSON object"),
        ('{"id": "x", "overrides": []}', "'overrides' must be a non-empty list"),
        ('{"id": "x", "overrides": "lr=1e-4"}', "'overrides' must be a non-empty list"),
        ('{"id": "other", "overrides": ["lr=1e-4"]}', "differs from the file name x.json"),
        ('{"id": "x", "overrides": ["lr=1e-4"], "requested_at": "now"}', "unix seconds"),
    ],
)
def test_malformed_requests_are_rejected_with_a_reason(raw, reason):
    request = parse_request(raw, "x")
    assert request.error is not None and reason in request.error


def test_request_survives_the_broadcast_encoding():
    request = Request("p1", {"lr": 1e-4, "grad_clip_norm": None}, "f@3", 12.5)
    assert Request.from_json(json.loads(json.dumps(request.to_json()))) == request


def test_poll_finds_each_request_once_and_acks_atomically(tmp_path):
    channel = ControlChannel(tmp_path)
    assert channel.poll() == []
    write_request(tmp_path, "p1", ["lr=5e-05"], finding_id="grad-explosion@12", requested_at=2.0)
    write_request(tmp_path, "p0", ["grad_clip_norm=1.0"], requested_at=1.0)
    found = channel.poll()
    assert [r.id for r in found] == ["p0", "p1"]  # oldest request first
    assert found[1].finding_id == "grad-explosion@12" and found[1].values == {"lr": 5e-05}
    assert channel.poll() == []  # handled: never returned again

    channel.acknowledge(
        found[1], status="applied", step=13, before={"lr": 1e-3}, after={"lr": 5e-05}
    )
    ack = json.loads((tmp_path / "control" / "acks" / "p1.json").read_text())
    assert ack["id"] == "p1" and ack["status"] == "applied" and ack["step"] == 13
    assert ack["reason"] is None and ack["before"] == {"lr": 1e-3} and ack["after"] == {"lr": 5e-05}
    assert ack["finding_id"] == "grad-explosion@12" and ack["requested_at"] == 2.0
    assert not list((tmp_path / "control" / "acks").glob(".*"))  # no temp file left behind

    # A restarted trainer (a resume) sees the ack and does not handle p1 again.
    assert [r.id for r in ControlChannel(tmp_path).poll()] == ["p0"]


def test_poll_is_one_stat_when_nothing_changed(tmp_path, monkeypatch):
    channel = ControlChannel(tmp_path)
    write_request(tmp_path, "p1", ["lr=5e-05"])
    old = time.time() - 60
    os.utime(channel.requests_dir, (old, old))  # outside the racy window
    assert [r.id for r in channel.poll()] == ["p1"]
    listed = []
    real_iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or real_iterdir(self))
    for _ in range(5):
        assert channel.poll() == []
    assert listed == []  # only os.stat of the requests directory


def test_a_partial_file_is_retried_then_rejected(tmp_path):
    channel = ControlChannel(tmp_path)
    path = channel.requests_dir / "p1.json"
    path.write_text('{"id": "p1", "overr')  # a writer that did not write atomically
    now = time.time()
    assert channel.poll(now=now) == []  # young: maybe still being written
    path.write_text('{"id": "p1", "overrides": ["lr=1e-4"]}')
    assert [r.values for r in channel.poll(now=now)] == [{"lr": 1e-4}]
    bad = channel.requests_dir / "p2.json"
    bad.write_text("garbage")
    rejected = channel.poll(now=time.time() + 10)  # old enough: rejected
    assert [r.id for r in rejected] == ["p2"] and "unparseable" in rejected[0].error


def test_unsafe_ids_and_temp_files_are_ignored_or_rejected(tmp_path):
    channel = ControlChannel(tmp_path)
    (channel.requests_dir / ".p1.json.tmp").write_text("{}")
    (channel.requests_dir / "notes.txt").write_text("hello")
    (channel.requests_dir / "bad id.json").write_text('{"overrides": ["lr=1e-4"]}')
    found = channel.poll()
    assert [r.id for r in found] == ["bad id"] and "use letters, digits" in found[0].error


def test_applied_after_lists_patches_to_replay_on_resume(tmp_path):
    channel = ControlChannel(tmp_path)
    for rid, step, status in (("a", 5, "applied"), ("b", 12, "applied"), ("c", 14, "rejected")):
        request = Request(rid, {"lr": 1e-4}, None, 0.0, None if status == "applied" else "no")
        channel.acknowledge(request, status=status, step=step, after={"lr": 1e-4})
    assert [a["id"] for a in channel.applied_after(10)] == ["b"]
    assert [a["id"] for a in channel.applied_after(0)] == ["a", "b"]


def test_hot_params_update_returns_the_old_values():
    class Arch:
        halt_exploration_prob = 0.1

    class Cfg:
        lr, puzzle_emb_lr, weight_decay, puzzle_emb_weight_decay = 1e-3, 1e-2, 0.1, 0.1
        grad_clip_norm = None
        arch = Arch()

    hot = HotParams.from_config(Cfg())
    before = hot.update({"lr": 5e-5, "grad_clip_norm": 1.0})
    assert before == {"lr": 1e-3, "grad_clip_norm": None}
    assert hot["lr"] == 5e-5 and hot["arch.halt_exploration_prob"] == 0.1
