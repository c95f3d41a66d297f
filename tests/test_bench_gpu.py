"""bench/gpu.py, the parts that run without a GPU: its flags, the one-line refusal without CUDA,
and the JSON it writes (a tiny --device cpu --dry-run)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flags_and_their_defaults():
    gpu = load()
    args = gpu.parse_args([])
    assert (args.device, args.steps, args.out, args.wheels) == ("cuda", 200, "gpu-bench.json", None)
    args = gpu.parse_args(["--device", "cpu", "--dry-run", "--steps", "3", "--wheels", "w"])
    assert args.dry_run and args.steps == 3 and args.wheels == "w"
    with pytest.raises(SystemExit):
        gpu.parse_args(["--steps", "0"])


def test_missing_wheels_are_named(monkeypatch):
    gpu = load()
    monkeypatch.setattr(gpu, "NEEDED", {"surely_not_installed_pkg": "surely-not-installed"})
    with pytest.raises(gpu.BenchError, match="missing surely-not-installed; pass --wheels DIR"):
        gpu.install_missing(None)
    assert gpu.install_missing is not None


def test_without_cuda_it_says_so_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "no CUDA device" in done.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_cpu_dry_run_writes_the_figures(tmp_path):
    out = tmp_path / "dry.json"
    argv = [str(SCRIPT), "--device", "cpu", "--dry-run", "--steps", "2", "--out", str(out)]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["schema"] == "hrm-doctor-gpu-bench/1"
    assert set(report["runs"]) == {"probe_off", "probe_on"}
    for run in report["runs"].values():
        assert run["returncode"] == 0 and run["steps"] == 22
        assert run["it_per_s"] > 0 and run["peak_mem_bytes"] > 0
    assert report["probe_overhead"] > 0 and "torch" in report["machine"]
    assert "probe overhead" not in done.stdout and "overhead" in done.stdout
