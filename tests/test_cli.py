"""The CLI through `main([...])` and through the installed console script."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hrm_doctor import RunWriter
from hrm_doctor.cli import main

BIN = Path(sys.executable).parent


def _run(path, steps=20, rank=0, world_size=1):
    with RunWriter(path, config={"lr": 1e-4}, rank=rank, world_size=world_size) as w:
        for i in range(steps):
            w.log({"train/lm_loss": 1.0, "grad/norm": 2.0}, step=i)
    return path


def test_info_prints_steps_ranks_metrics_and_status(tmp_path, capsys):
    _run(tmp_path / "exp", rank=0, world_size=2)
    _run(tmp_path / "exp", rank=1, world_size=2)
    assert main(["info", str(tmp_path / "exp")]) == 0
    out = capsys.readouterr().out
    assert "0 .. 19 (20 steps)" in out and "2 of world size 2" in out
    assert "2 scalar" in out and "finished" in out


def test_info_json(tmp_path, capsys):
    _run(tmp_path / "exp")
    assert main(["info", str(tmp_path / "exp"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["last_step"] == 19 and info["steps"] == 20 and info["status"] == "finished"
    assert info["size_bytes"] > 0 and info["ranks"] == [0]


def test_info_shows_lineage_after_a_resume(tmp_path, capsys):
    run = _run(tmp_path / "exp")
    with RunWriter(run, resume_from_step=10) as w:
        w.log({"train/lm_loss": 0.5}, step=10)
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "lineage" in out and "from step 10" in out


def test_info_missing_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hrm-doctor info: error: {tmp_path / 'nope'}: no such run directory"


def test_info_on_a_non_run_directory(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_runs_lists_every_run_under_a_root(tmp_path, capsys):
    _run(tmp_path / "a")
    _run(tmp_path / "sweep" / "0")
    _run(tmp_path / "sweep" / "1", steps=5)
    (tmp_path / "not-a-run").mkdir()
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("a", "sweep/0", "sweep/1"):
        assert name in out
    assert "not-a-run" not in out
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["last_step"] for r in rows) == [4, 19, 19]


def test_runs_missing_root_exit_2(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_bad_flag_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info", "somerun", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_no_command_prints_help_exit_2(capsys):
    assert main([]) == 2
    assert "usage: hrm-doctor" in capsys.readouterr().out


def test_console_script_help_is_fast_and_light():
    t0 = time.monotonic()
    out = subprocess.run(
        [str(BIN / "hrm-doctor"), "--help"], capture_output=True, text=True, check=True
    )
    assert "info" in out.stdout and "runs" in out.stdout
    assert (
        time.monotonic() - t0 < 5
    )  # a sanity bound only; bench/startup figures are in BENCHMARKS.md


def test_cli_import_pulls_in_nothing_heavy():
    code = (
        "import sys, hrm_doctor, hrm_doctor.cli; hrm_doctor.cli.build_parser();"
        "print(','.join(m for m in ('torch','streamlit','wandb','plotly','pandas','numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_runs_ranks_a_sweep_by_health_then_headline(tmp_path, capsys):
    import math

    from hrm_doctor.watch.findings_log import FindingsLog

    for name, acc, nan in (("t0", 0.4, False), ("t1", 0.6, False), ("t2", 0.9, True)):
        with RunWriter(tmp_path / name) as w:
            for i in range(20):
                m = {"train/lm_loss": math.nan if nan and i == 19 else 1.0}
                if i % 10 == 9:
                    m["eval/all/exact_accuracy"] = acc
                w.log(m, step=i)
        assert main(["watch", str(tmp_path / name), "--once"]) == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["path"].split("/")[-1], r["health"]) for r in rows] == [
        ("t1", "healthy"),
        ("t0", "healthy"),
        ("t2", "critical"),
    ]
    assert rows[0]["headline"] == "eval/all/exact_accuracy"
    assert rows[0]["headline_value"] == pytest.approx(0.6)
    assert FindingsLog(tmp_path / "t0").ids == set()
