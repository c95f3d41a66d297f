"""A plain, non-editable install finds the built-in rule packs and their tests (they are
package data read through importlib.resources, not paths relative to the checkout)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_installed_package_finds_the_builtin_packs_and_tests(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("hrm_doctor-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "hrm_doctor", "rules", "list", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    packs = {r["pack"] for r in json.loads(out.stdout)}
    assert packs == {"config", "core", "act", "hierarchy", "puzzle_emb", "distributed", "perf"}
    where = subprocess.run(
        [sys.executable, "-c", "import rules; print(rules.pack_files()[0])"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))
    tests = subprocess.run(
        [sys.executable, "-c", "import rules; print(len(rules.test_files()))"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(tests.stdout) >= 7
