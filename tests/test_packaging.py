"""A plain, non-editable `pip install .` works: the wheel carries every package and data file,
and the installed CLI runs from outside the checkout."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
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
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("hrm_doctor-*.whl")
    return path


@pytest.mark.slow
def test_wheel_carries_packages_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "hrm_doctor/cli.py",
        "hrm_doctor/telemetry/schema.py",
        "hrm_core/__init__.py",
        "dashboards/__init__.py",
        "rules/__init__.py",
    ):
        assert required in names
    for pattern_dir in ("rules", "hrm_core/conf"):
        shipped = sorted(
            n for n in names if n.startswith(pattern_dir + "/") and n.endswith(".yaml")
        )
        in_tree = (
            sorted(str(p.relative_to(ROOT)) for p in (ROOT / pattern_dir).rglob("*.yaml"))
            if (ROOT / pattern_dir).exists()
            else []
        )
        assert shipped == in_tree, f"{pattern_dir}: YAML files missing from the wheel"
    entry = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert (
        "hrm-doctor = hrm_doctor.cli:main" in entry
        and "hrm-train = hrm_core.pretrain:main" in entry
    )


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed (no deps) into its own directory; `run` runs Python from elsewhere."""
    site = tmp_path_factory.mktemp("site")
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
    work = tmp_path_factory.mktemp("elsewhere")
    env = dict(os.environ, PYTHONPATH=str(site))

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, check=True
        )
        return out.stdout

    return site, run


@pytest.mark.slow
def test_installed_cli_runs_outside_the_checkout(installed):
    site, run = installed
    assert run("-c", "import hrm_doctor; print(hrm_doctor.__file__)").startswith(str(site))
    assert "hrm-doctor" in run("-m", "hrm_doctor", "--help")


@pytest.mark.slow
def test_installed_package_finds_the_builtin_packs_and_tests(installed):
    """The packs and their tests are package data read through importlib.resources."""
    import json

    site, run = installed
    packs = {r["pack"] for r in json.loads(run("-m", "hrm_doctor", "rules", "list", "--json"))}
    hrm = {"config", "core", "act", "hierarchy", "puzzle_emb", "distributed", "perf"}
    assert packs == hrm | {"trm"}
    assert run("-c", "import rules; print(rules.pack_files()[0])").startswith(str(site))
    assert int(run("-c", "import rules; print(len(rules.test_files()))")) >= 8
