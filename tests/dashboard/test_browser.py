"""The real thing: `hrm-doctor dashboard ROOT --port P` in a subprocess, read by headless Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIN = Path(sys.executable).parent
CHART = "[data-testid=stEChartsChart] canvas"  # a drawn chart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited with {proc.returncode}: {proc.stdout.read()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r,
        ):
            if r.read().strip() == b"ok":
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {deadline_s:.0f} s")


@contextlib.contextmanager
def dashboard_server(root: Path, *extra: str):
    """`hrm-doctor dashboard ROOT --port FREE` as a user starts it; stopped with SIGTERM."""
    port = free_port()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        [str(BIN / "hrm-doctor"), "dashboard", str(root), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the Streamlit child goes with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a Streamlit child left behind, if any


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield b
        b.close()


def test_dashboard_serves_the_diagnosis_to_a_real_browser(dash_root, browser, tmp_path):
    with dashboard_server(dash_root) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.goto(url + "/")
        page.get_by_text("Needs attention").wait_for(timeout=30_000)
        # the table of runs renders after the page's frame (slower on a loaded machine)
        page.get_by_text("Gradient norm exploded").first.wait_for(timeout=30_000)
        body = page.inner_text("body")
        assert "critical" in body
        assert "Gradient norm exploded: grad/norm rose from a median of 2.0" in body
        assert "lr=3.5e-05 grad_clip_norm=1.0" in body
        page.screenshot(path=str(tmp_path / "runs.png"))

        page.goto(url + "/diagnosis?run=explosion")
        page.get_by_text("Gradient norm exploded").first.wait_for(timeout=30_000)
        page.locator(CHART).first.wait_for(timeout=30_000)
        body = page.inner_text("body")
        assert "Diagnosis · explosion" in body
        assert "HRM trains stably at lr 7e-5..1e-4 only with warm-up" in body
        assert "Then monitor:" in body and "If it fails:" in body
        assert "Apply patch" not in body  # not started with --allow-apply
        page.screenshot(path=str(tmp_path / "diagnosis.png"))
        assert (tmp_path / "diagnosis.png").stat().st_size > 20_000
