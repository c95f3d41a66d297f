"""`hrm-doctor run --apply`: a smoke run started with an absurd learning rate ends healthy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrm_doctor.cli import main
from hrm_doctor.rundir import read_findings
from hrm_doctor.watch.patches import read_patches
from hrm_doctor.watch.supervisor import read_lineage, run_dir_of, with_overrides

BIN = Path(sys.executable).parent


def test_overrides_replace_keys_given_before():
    cmd = ["hrm-train", "experiment=smoke", "lr=10", "run_dir=r"]
    assert with_overrides(cmd, ["lr=1e-4", "resume=never"]) == [
        "hrm-train",
        "experiment=smoke",
        "run_dir=r",
        "lr=1e-4",
        "resume=never",
    ]
    assert run_dir_of(cmd) == "r" and run_dir_of(["hrm-train"]) is None


def test_run_without_a_command_is_exit_2(capsys):
    assert main(["run", "--apply"]) == 2
    assert "no training command" in capsys.readouterr().err


def test_run_with_a_missing_program_is_exit_2(tmp_path, capsys):
    assert main(["run", "--", str(tmp_path / "no-such-trainer"), f"run_dir={tmp_path / 'r'}"]) == 2
    assert "cannot start the training command" in capsys.readouterr().err


@pytest.mark.slow
def test_a_blown_up_smoke_run_is_healed_by_rollback_and_restart(tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "bad-lr"
    cmd = [
        str(BIN / "hrm-doctor"),
        "run",
        "--apply",
        "--",
        str(BIN / "hrm-train"),
        "experiment=smoke",
        f"run_dir={run}",
        f"data_path={tmp_path / 'data'}",
        "lr=10",
        "lr_warmup_steps=0",
        "epochs=8",
        "eval_interval=4",
    ]
    env = dict(os.environ, WANDB_MODE="disabled")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    restarts = [e for e in read_lineage(run) if e["event"] == "restart"]
    assert len(restarts) >= 1 and "lr=10" not in " ".join(restarts[-1]["overrides"])
    first = read_findings(run)
    assert any(f["severity"] == "critical" for f in first)
    assert any(p["state"] == "applied" for p in read_patches(run))
    # the healed run, judged on its final timeline, is healthy
    explain = subprocess.run(
        [
            str(BIN / "hrm-doctor"),
            "explain",
            "--run",
            str(run),
            "--format",
            "json",
            "--fail-on",
            "warning",
        ],
        capture_output=True,
        text=True,
    )
    report = json.loads(explain.stdout)
    assert explain.returncode == 0, report["findings"]
    assert report["status"] in ("healthy", "info")
    info = subprocess.run(
        [str(BIN / "hrm-doctor"), "info", str(run)], capture_output=True, text=True
    )
    assert "restart 1: after" in info.stdout


def test_a_rollback_goes_back_to_before_the_runs_own_trouble_not_to_a_config_check():
    """A config check fires at step 0; the run was fine until its gradients exploded at 220:
    the restart both ask for rolls back to before 220, with both findings' overrides."""
    from hrm_doctor.engine.finding import Finding, Suggestion
    from hrm_doctor.watch.supervisor import Supervisor

    def f(id, category, first):
        return Finding(id, id.split("@")[0], "core", category, "critical", first, first, None,
                       None, "m", {}, Suggestion())  # fmt: skip

    sup = Supervisor(["hrm-train", "run_dir=r"], None, apply=True, console=None)
    sup.request_restart(f("lr-absurd@0", "config", 0), ["lr=0.001"])
    sup.request_restart(f("grad-explosion@220", "explosion", 220), ["grad_clip_norm=1.0"])
    finding, overrides = sup._pending
    assert finding.id == "grad-explosion@220"
    assert sorted(overrides) == ["grad_clip_norm=1.0", "lr=0.001"]


def test_a_restart_rolls_back_to_before_the_first_sign_of_a_trouble_that_came_back(tmp_path):
    """A critical explosion at 135 was patched hot; the trouble came back at 282. The rollback
    goes to before 135 (the run was damaged since), not to before 282; a trouble from long ago
    (beyond ten patch budgets) and the config checks do not pull it further back."""
    import json

    from hrm_doctor.engine.finding import Finding, Suggestion
    from hrm_doctor.watch.supervisor import Supervisor

    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"total_steps": 500}))  # budget 50: reach 500
    rows = [("lr-very-high@0", "config", 0), ("old-trouble@5", "explosion", -600),
            ("grad-norm-rebound@135", "explosion", 135), ("grad-norm-growth@282", "explosion", 282)]  # fmt: skip
    with open(run / "findings.jsonl", "w") as f:
        for fid, category, first in rows:
            f.write(json.dumps({"id": fid, "category": category, "severity": "critical",
                                "first_step": first, "last_step": first}) + "\n")  # fmt: skip
    sup = Supervisor(["hrm-train", f"run_dir={run}"], None, apply=True, console=None)
    came_back = Finding("grad-norm-growth@282", "grad-norm-growth", "core", "explosion",
                        "critical", 282, 290, None, None, "m", {}, Suggestion())  # fmt: skip
    assert sup._trouble_onset(came_back) == 135
