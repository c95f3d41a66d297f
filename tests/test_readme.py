"""Every command in the README runs as written (the long ones with smoke settings appended).

The commands of the ```bash blocks run in order in one scratch directory, as a newcomer would
type them after `make setup`. Smoke settings shrink what would take hours: tiny data sets, a tiny
architecture and two steps for the published recipes, two processes instead of eight. Servers
(watch without --once, the dashboard) run until they are up, then get SIGTERM and must exit 0.
`make demo` and `make test` are what CI itself runs (.ci/run), so they are not re-run here.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY_DATA = {
    "sudoku": ["--box-size", "2", "--train-size", "64", "--test-size", "16", "--num-aug", "0"],
    "maze": ["--size", "8", "--train-size", "32", "--test-size", "8"],
    "arc": ["--max-tasks", "2", "--num-aug", "1"],
}
TINY_RECIPE = [
    "arch.hidden_size=32",
    "arch.num_heads=2",
    "arch.H_layers=1",
    "arch.L_layers=1",
    "arch.H_cycles=1",
    "arch.L_cycles=1",
    "arch.halt_max_steps=2",
    "global_batch_size=8",
    "max_steps=2",
    "wandb.mode=disabled",
]
SHORT_SMOKE = ["epochs=4", "eval_interval=4"]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def smoke(argv: list[str]) -> list[str]:
    """The same command with smoke settings."""
    if argv[:3] == ["python", "-m", "hrm_core.data"]:
        return [sys.executable, *argv[1:], *TINY_DATA[argv[4]], "--quiet"]
    if argv[0] == "torchrun":
        argv = [str(BIN / "torchrun"), *[a.replace("=8", "=2") for a in argv[1:]]]
    if "hrm-train" in argv:
        i = argv.index("hrm-train")
        argv[i] = str(BIN / "hrm-train")
        if any(a.startswith("task=") for a in argv):
            argv = argv + TINY_RECIPE
        elif "experiment=smoke" in argv:
            argv = argv + SHORT_SMOKE
    if argv[0] == "hrm-doctor":
        argv = [str(BIN / "hrm-doctor"), *argv[1:]]
    return argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], cwd: Path, env: dict, ready: str) -> None:
    """Start a server, wait for `ready` in its output, stop it with SIGTERM: it must exit 0."""
    p = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        for line in p.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    try:
        while not any(ready in line for line in list(lines)):
            assert p.poll() is None, f"{shlex.join(argv)} exited early:\n{''.join(lines)}"
            assert time.monotonic() < deadline, f"{shlex.join(argv)} never said {ready!r}"
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=30)
        assert rc == 0, f"{shlex.join(argv)} exited {rc} on SIGTERM:\n{''.join(lines)}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_readme_commands_are_the_tested_ones():
    cmds = readme_commands()
    assert len(cmds) >= 20
    for line in cmds:
        assert line.split()[0] in ("python", "hrm-train", "hrm-doctor", "torchrun"), line


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    for line in readme_commands():
        argv = smoke(shlex.split(line))
        if argv[1:3] == ["watch", "runs/"]:
            _serve(argv, tmp_path, env, ready="watching smoke")
            continue
        if argv[1:2] == ["dashboard"]:
            port = str(_free_port())
            _serve([*argv[:-1], port] if argv[-2] == "--port" else argv, tmp_path, env, "open http")
            continue
        out = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert out.returncode == 0, (
            f"`{line}` exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    assert "<html" in (tmp_path / "hrm-doctor.html").read_text().lower()
    assert "<testsuite" in (tmp_path / "hrm-doctor.xml").read_text()
    assert (tmp_path / "runs" / "bad-lr" / "lineage.jsonl").exists()
