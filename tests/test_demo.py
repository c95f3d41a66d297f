"""`make demo` in its CI form: two supervised smoke runs; the blown-up one is healed."""

import os
import subprocess
import sys

import pytest

from hrm_doctor.rundir import read_findings
from hrm_doctor.watch.patches import read_patches
from hrm_doctor.watch.supervisor import read_lineage


@pytest.mark.slow
def test_demo_heals_the_bad_run_and_both_end_healthy(tmp_path):
    pytest.importorskip("torch")
    root, data = tmp_path / "runs", tmp_path / "data"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hrm_doctor.demo",
            "--no-browser",
            "--root",
            str(root),
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, WANDB_MODE="disabled"),
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "healthy" in out.stdout
    bad = root / "demo-bad-lr"
    assert [e["event"] for e in read_lineage(bad)] == ["restart"]
    assert any(f["severity"] == "critical" for f in read_findings(bad))  # the record stays
    assert any(p["state"] == "applied" for p in read_patches(bad))
    assert read_findings(root / "demo-healthy") == []
