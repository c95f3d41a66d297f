"""The daemon as a real process: started before the run, killed and restarted, two at once."""

import json
import signal
import subprocess
import sys
import time

import pytest
from watch_helpers import BIN, findings, healthy_steps, nan_step, wait_for

from hrm_doctor import RunWriter

pytestmark = pytest.mark.slow


def test_started_before_the_run_exists_then_finds_a_nan(tmp_path, daemon):
    run = tmp_path / "runs" / "exp42"
    proc = daemon(run)
    time.sleep(0.5)
    with RunWriter(run, config={"lr": 1e-4}) as w:
        healthy_steps(w, 0, 100)
        w.flush()
        nan_step(w, 100)
        w.flush()
        got = wait_for(lambda: findings(run), what="a finding")
    assert got[0]["category"] == "nonfinite" and got[0]["first_step"] == 100
    assert got[0]["severity"] == "critical" and got[0]["id"] == "nonfinite-value@100"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "nonfinite-value" in out


def test_killed_and_restarted_daemon_neither_repeats_nor_misses(tmp_path, daemon):
    run = tmp_path / "exp"
    w = RunWriter(run, config={"lr": 1e-4})
    healthy_steps(w, 0, 50)
    nan_step(w, 50)
    w.flush()
    first = daemon(run)
    wait_for(lambda: findings(run), what="the first finding")
    first.send_signal(signal.SIGKILL)
    first.wait()
    # while no daemon runs: another pathology
    healthy_steps(w, 51, 120)
    w.log({"train/lm_loss": 1.0, "grad/norm": float("inf")}, step=120)
    w.close()
    second = daemon(run)
    wait_for(lambda: len(findings(run)) >= 2, what="the finding made while no daemon ran")
    time.sleep(1.0)
    second.send_signal(signal.SIGKILL)
    second.wait()
    third = subprocess.run([str(BIN), "watch", str(run), "--once"], capture_output=True, text=True)
    assert third.returncode == 0
    ids = [f["id"] for f in findings(run)]
    assert len(ids) == len(set(ids)), f"duplicate findings: {ids}"
    assert {"nonfinite-value@50", "nonfinite-value@120"} <= set(ids)


def test_a_root_picks_up_runs_as_they_appear(tmp_path, daemon):
    root = tmp_path / "runs"
    root.mkdir()
    daemon(root)
    time.sleep(0.5)
    for name in ("a", "b/c"):
        with RunWriter(root / name) as w:
            healthy_steps(w, 0, 20)
            nan_step(w, 20)
    for name in ("a", "b/c"):
        wait_for(lambda name=name: findings(root / name), what=f"a finding in {name}")


def test_polling_mode_finds_it_too(tmp_path, daemon):
    run = tmp_path / "exp"
    daemon(run, "--poll")
    with RunWriter(run) as w:
        healthy_steps(w, 0, 20)
        nan_step(w, 20)
    wait_for(lambda: findings(run), what="a finding while polling")


def test_two_daemons_on_one_run_the_second_says_why(tmp_path, daemon):
    run = tmp_path / "exp"
    with RunWriter(run) as w:
        healthy_steps(w, 0, 5)
    first = daemon(run)
    wait_for(
        lambda: (run / ".hrm-doctor.lock").exists() and (run / ".hrm-doctor.lock").read_text(),
        what="the lock",
    )
    second = subprocess.run(
        [str(BIN), "watch", str(run), "--once"], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 2
    assert (
        f"another hrm-doctor daemon (pid {first.pid}) is already watching this run" in second.stderr
    )
    assert len(second.stderr.strip().splitlines()) == 1


def test_on_finding_command_gets_the_finding_as_json(tmp_path, daemon):
    run = tmp_path / "exp"
    out = tmp_path / "alert.json"
    with RunWriter(run) as w:
        healthy_steps(w, 0, 20)
        nan_step(w, 20)
    cmd = f"{sys.executable} -c \"import sys; open('{out}', 'w').write(sys.stdin.read())\""
    result = subprocess.run(
        [str(BIN), "watch", str(run), "--once", "--on-finding", cmd], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    alert = json.loads(wait_for(lambda: out.exists() and out.read_text(), what="the alert"))
    assert alert["rule"] == "nonfinite-value" and alert["run"] == "exp"


def test_a_resumed_run_is_judged_on_its_new_timeline(tmp_path, daemon):
    run = tmp_path / "exp"
    with RunWriter(run) as w:
        healthy_steps(w, 0, 60)
        nan_step(w, 60)
    daemon(run)
    wait_for(lambda: findings(run), what="the NaN finding")
    with RunWriter(run, resume_from_step=40) as w:  # rolled back to step 40, healthy this time
        healthy_steps(w, 40, 80)
        nan_step(w, 80)
    got = wait_for(
        lambda: [f for f in findings(run) if f["first_step"] == 80], what="the new branch's finding"
    )
    assert got[0]["id"] == "nonfinite-value@80"
    assert [f["id"] for f in findings(run)].count("nonfinite-value@60") == 1
