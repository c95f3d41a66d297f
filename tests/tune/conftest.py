"""Shared pieces of the tune tests: a tiny smoke dataset built once, the training command over
it, the environment of a real worker process, and a throwaway PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from smoke_helpers import smoke_command as smoke_argv
from smoke_helpers import tiny_dataset

VENV_BIN = Path(sys.executable).parent
HRM_DOCTOR = shutil.which("hrm-doctor", path=str(VENV_BIN)) or "hrm-doctor"


def _pg_bin() -> Path | None:
    """The PostgreSQL server binaries: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("data") / "sudoku4-tiny")


@pytest.fixture
def smoke_command(tiny_data: Path) -> list[str]:
    return smoke_argv(tiny_data)


def worker_env() -> dict[str, str]:
    return {
        **os.environ,
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server in a temporary directory, on a free port; stopped afterwards.

    initdb refuses to run as root: then the server runs as the `postgres` system user.
    """
    pg_bin = _pg_bin()
    if pg_bin is None or not (pg_bin / "pg_ctl").is_file():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    initdb, pg_ctl = pg_bin / "initdb", pg_bin / "pg_ctl"
    pytest.importorskip("psycopg2", reason="psycopg2 not installed (pip install psycopg2-binary)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="hrm-tune-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing: cannot start PostgreSQL")
        try:
            shutil.chown(base, user="postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*as_user, *map(str, cmd)], check=True, capture_output=True, text=True, timeout=120
    )
    run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", data, "-o", opts, "-l", base / "server.log", "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
