"""Daemon pieces without processes: the findings log, the lock, errors of the command."""

import pytest

from hrm_doctor import RunWriter
from hrm_doctor.cli import main
from hrm_doctor.rundir import read_findings
from hrm_doctor.watch.findings_log import FindingsLog
from hrm_doctor.watch.lock import RunLock, RunLocked


class F:
    def __init__(self, id):
        self.id = id

    def to_json(self):
        return {"id": self.id, "rule": "r", "severity": "critical"}


def test_findings_log_writes_each_id_once_and_repairs_a_torn_tail(tmp_path):
    log = FindingsLog(tmp_path)
    assert [f.id for f in log.append([F("a@1"), F("b@2"), F("a@1")])] == ["a@1", "b@2"]
    with open(tmp_path / "findings.jsonl", "ab") as f:
        f.write(b'{"id": "c@3", "rule": "r", "sev')  # a power cut mid-line
    assert [f["id"] for f in read_findings(tmp_path)] == ["a@1", "b@2"]
    again = FindingsLog(tmp_path)
    assert again.ids == {"a@1", "b@2"}
    assert (tmp_path / "findings.jsonl").read_bytes().endswith(b"\n")
    assert [f.id for f in again.append([F("b@2"), F("c@3")])] == ["c@3"]
    assert [f["id"] for f in read_findings(tmp_path)] == ["a@1", "b@2", "c@3"]


def test_lock_is_exclusive_and_released(tmp_path):
    a, b = RunLock(tmp_path), RunLock(tmp_path)
    a.acquire()
    with pytest.raises(RunLocked, match="already watching"):
        b.acquire()
    a.release()
    b.acquire()
    b.release()


def test_once_on_a_missing_target_is_exit_2(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope"), "--once"]) == 2
    assert "no such run directory or root" in capsys.readouterr().err


def test_bad_rule_pack_is_exit_2(tmp_path, capsys):
    with RunWriter(tmp_path / "exp") as w:
        w.log({"a": 1.0}, step=0)
    assert (
        main(["watch", str(tmp_path / "exp"), "--once", "--rules", str(tmp_path / "missing.yaml")])
        == 2
    )
    assert "missing.yaml" in capsys.readouterr().err


def test_bad_tick_is_exit_2(tmp_path, capsys):
    assert main(["watch", str(tmp_path), "--tick", "0"]) == 2
    assert "--tick" in capsys.readouterr().err


def test_once_writes_findings_and_a_second_pass_adds_none(tmp_path, capsys):
    run = tmp_path / "exp"
    with RunWriter(run) as w:
        for i in range(30):
            w.log({"train/lm_loss": float("nan") if i == 29 else 1.0}, step=i)
    assert main(["watch", str(run), "--once"]) == 0
    assert "1 new finding(s)" in capsys.readouterr().out
    assert main(["watch", str(run), "--once"]) == 0
    assert "0 new finding(s)" in capsys.readouterr().out


def test_a_run_that_never_learned_is_not_worth_resuming(tmp_path):
    """A rollback resumes a checkpoint only when the run had learned something by then (its
    loss 5 % below its first steps'): an lr without warmup leaves the loss at chance from the
    first steps, long before an alarm, and its checkpoints hold wrecked weights."""
    from hrm_doctor.watch.recovery import learned_by

    stuck, learning = tmp_path / "stuck", tmp_path / "learning"
    with RunWriter(stuck) as a, RunWriter(learning) as b:
        for i in range(1, 201):
            a.log({"train/lm_loss": 1.39 + 0.01 * (i % 3)}, step=i)  # chance level throughout
            b.log({"train/lm_loss": 2.0 * 0.995**i}, step=i)
    assert not learned_by(stuck, 150)
    assert learned_by(learning, 150) and not learned_by(learning, 5)
    with RunWriter(tmp_path / "no-loss") as c:
        for i in range(1, 50):
            c.log({"grad/norm": 1.0}, step=i)
    assert learned_by(tmp_path / "no-loss", 40)  # nothing to judge by: resume as before
