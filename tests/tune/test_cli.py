"""`hrm-doctor tune` error paths: one line, exit 2; and storage URL handling."""

from __future__ import annotations

import socket

import pytest

from hrm_doctor.cli import main
from hrm_doctor.errors import UserError
from hrm_doctor.tune.storage import redact, resolve_storage


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith("hrm-doctor tune: error: ")
    return err


def test_no_training_command(capsys):
    assert "no training command" in _error(capsys, ["tune", "--trials", "2"])
    assert "no training command" in _error(capsys, ["tune", "--"])


def test_a_bad_space_file_names_file_and_line(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {log: [1.0e-5, 1.0e-2]}\nweight_decay: {log: [0, 1]}\n")
    err = _error(
        capsys, ["tune", "--space", str(space), "--root", str(tmp_path), "--", "hrm-train"]
    )
    assert f"{space}:2:1: weight_decay: log range needs low > 0" in err


def test_a_missing_space_file(tmp_path, capsys):
    err = _error(capsys, ["tune", "--space", str(tmp_path / "x.yaml"), "--", "hrm-train"])
    assert "x.yaml: no such file" in err


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("nosuchdb://host/db", "unknown storage 'nosuchdb'"),
        ("study.db", "not a storage URL"),
    ],
)
def test_an_unknown_storage_url(tmp_path, capsys, url, what):
    argv = [
        "tune",
        "--storage",
        url,
        "--root",
        str(tmp_path),
        "--",
        "hrm-train",
        "experiment=smoke",
    ]
    assert what in _error(capsys, argv)


def test_an_unreachable_database_is_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://u:secret@127.0.0.1:{port}/db"
    argv = ["tune", "--storage", url, "--root", str(tmp_path), "--", "hrm-train"]
    err = _error(capsys, argv)
    assert "cannot open" in err or "driver is not installed" in err
    assert "secret" not in err


def test_a_training_command_that_does_not_exist(tmp_path, capsys):
    argv = ["tune", "--root", str(tmp_path), "--", "no-such-trainer-xyz", "lr=1"]
    assert "no-such-trainer-xyz: cannot start" in _error(capsys, argv)


def test_a_report_on_a_missing_study(tmp_path, capsys):
    err = _error(capsys, ["tune", "--report", "nope", "--root", str(tmp_path)])
    assert "study.db: no such study file" in err


def test_storage_urls(tmp_path):
    assert resolve_storage(None, tmp_path) == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    assert resolve_storage("postgres://h/db", tmp_path) == "postgresql://h/db"
    assert resolve_storage("postgresql+psycopg2://h/db", tmp_path) == "postgresql+psycopg2://h/db"
    assert redact("postgresql://me:pw@h:5432/db") == "postgresql://me:***@h:5432/db"
    with pytest.raises(UserError):
        resolve_storage("redis://h", tmp_path)


def test_cli_import_stays_light():
    import subprocess
    import sys

    code = "import sys, hrm_doctor.cli; print(sorted(m for m in ('optuna', 'pandas', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
