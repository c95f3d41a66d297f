"""Dashboard benchmark: first render of a 100,000-step run, on the server and in a real browser.

Writes a synthetic exploding run of STEPS steps (every metric family, 2 tensors every 50 steps,
findings.jsonl) and prints:

- server side (AppTest, the page scripts as Streamlit runs them): the first render of each page
  in a fresh process (imports, the reader's full read and every chart), then again with the
  module imports warm but every cache cleared;
- the most points any series sends to the browser, and the Run page's chart payload against the
  same charts without downsampling (what plotting the raw series would send);
- in Chromium (Playwright, headless): `hrm-doctor dashboard` started fresh, the time from
  navigation until the first chart is visible, and until the Runs table is.

With --fleet ROOT (a root of many runs a daemon has watched, e.g. the one bench/fleet.py
--keep writes): the Runs page over all of them, from the daemon's summary.json files, in
Chromium (navigation -> table visible with every run counted), against reading every run's
telemetry for its row (what the page did before, timed on a sample of runs).

Target (DESIGN.md): <= 3 s first render; <= ~4,000 points per series; issue 15: the Runs page
over 1,000 runs <= 3 s in Chromium.
Usage: python bench/dashboard.py [--steps 100000] [--no-browser] [--screenshots docs/img]
       python bench/dashboard.py --only-screenshots --screenshots docs/img
       python bench/dashboard.py --fleet /tmp/fleet1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "dashboards"
CHROMIUM = "/usr/bin/chromium"
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
CHART = "[data-testid=stEChartsChart] canvas"  # a drawn chart
PAGES = ("runs", "run", "act", "embeddings", "diagnosis", "compare")
THEMES = ("Losses", "Accuracy", "Learning rates", "Gradients", "Updates", "Carry state", "System")


def write_bench_root(root: Path, steps: int) -> Path:
    from dashboards import sample_runs

    run = root / "big"
    t0 = time.perf_counter()
    sample_runs.write_run(run, steps, "explosion", tensor_every=50, eval_every=1000, seed=7)
    found = sample_runs.explosion_findings(steps)
    sample_runs.write_findings(run, found)
    sample_runs.write_patches(run, sample_runs.explosion_patches(found))
    sample_runs.write_run(root / "small", 2000, "healthy", seed=8)
    sample_runs.write_findings(root / "small", [])
    print(f"wrote {steps:,} steps in {time.perf_counter() - t0:.1f} s to {run}")
    return root


# ---- server side ---------------------------------------------------------------------------

_APPTEST_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
page, run = sys.argv[1], sys.argv[2]
at = AppTest.from_file(os.path.join(sys.argv[3], "app_pages", page + ".py"), default_timeout=120)
at.query_params["run"] = run
at.run()
assert not at.exception, [e.value for e in at.exception]
print(json.dumps({"s": time.perf_counter() - t0, "charts": len(list(at.get("echarts_chart")))}))
"""


def first_render_fresh_process(root: Path, page: str) -> dict:
    """One page's first render in a new Python process: imports + read + charts."""
    env = {**os.environ, "HRM_DOCTOR_ROOT": str(root), "WANDB_MODE": "disabled"}
    out = subprocess.run(
        [sys.executable, "-c", _APPTEST_CHILD, page, "big", str(APP_DIR)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _chart_points_and_bytes(chart) -> tuple[int, int]:
    """The most rows any series' dataset sends, and the chart's bytes (option + Arrow data)."""
    import pyarrow as pa

    most = 0
    size = len(chart.proto.spec)
    for d in chart.proto.datasets:
        most = max(most, pa.ipc.open_stream(d.data.data).read_all().num_rows)
        size += len(d.data.data)
    return most, size


def server_side(root: Path) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HRM_DOCTOR_ROOT"] = str(root)
    results: dict = {"fresh": {}, "warm_imports": {}}
    for page in PAGES:
        results["fresh"][page] = first_render_fresh_process(root, page)["s"]
    max_points = 0
    payload = 0
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        t0 = time.perf_counter()
        at = AppTest.from_file(str(APP_DIR / "app_pages" / f"{page}.py"), default_timeout=120)
        at.query_params["run"] = "big"
        at.run()
        results["warm_imports"][page] = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        for c in at.get("echarts_chart"):
            most, size = _chart_points_and_bytes(c)
            max_points = max(max_points, most)
            if page == "run":
                payload += size
    for theme in THEMES:  # every tab of the Run page
        at = AppTest.from_file(str(APP_DIR / "app_pages" / "run.py"), default_timeout=120)
        at.query_params["run"] = "big"
        at.query_params["theme"] = theme
        at.run()
        for c in at.get("echarts_chart"):
            max_points = max(max_points, _chart_points_and_bytes(c)[0])
    results["max_points"] = max_points
    results["run_payload_bytes"] = payload
    results["raw_payload_bytes"] = raw_payload(root / "big")
    return results


def raw_payload(run: Path) -> int:
    """The Run page's first tab charted without downsampling: what naive plotting would send."""
    from streamlit import dataframe_util

    from dashboards import charts
    from dashboards.live import LiveRun
    from dashboards.panels import THEMES as PANEL_THEMES

    lr = LiveRun(run)
    lr.refresh()
    total = 0
    for panel in PANEL_THEMES["Losses"]:
        series = [s for m in panel.metrics(lr.metrics) for s in lr.series(m)]
        spec = charts.line_figure(series, panel.title)
        for d in spec.pop("dataset"):
            total += len(dataframe_util.convert_anything_to_arrow_bytes(d["source"]))
        total += len(json.dumps(spec))
    return total


# ---- in the browser ------------------------------------------------------------------------


def start_dashboard(root: Path, port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "hrm-doctor"),
            "dashboard",
            str(root),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "WANDB_MODE": "disabled"},
        start_new_session=True,
    )
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise TimeoutError("dashboard did not start within 60 s")


def stop(proc: subprocess.Popen) -> None:
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_chart_s(page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.locator(CHART).first.wait_for(state="visible", timeout=60_000)
    return time.perf_counter() - t0


BASELINE_APP = """
import numpy as np, pandas as pd, streamlit as st
st.title("baseline")
x = np.arange(4000)
st.echarts_chart({"dataset": {"source": pd.DataFrame({"step": x, "value": np.sin(x / 100)})},
                  "xAxis": {"type": "value"}, "yAxis": {"type": "value"},
                  "series": [{"type": "line", "encode": {"x": "step", "y": "value"}}]})
"""


def baseline_s() -> float:
    """The floor: a bare Streamlit page with one 4,000-point chart, new visitor, fresh server."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hrm-dash-baseline-") as tmp:
        app = Path(tmp) / "baseline.py"
        app.write_text(BASELINE_APP)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(app),
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = b.new_page(viewport={"width": 1440, "height": 1000})
                took = _first_chart_s(page, f"http://127.0.0.1:{port}/")
                b.close()
        finally:
            stop(proc)
    return took


def browser_side(root: Path) -> dict:
    """Navigation -> first chart visible, for a new visitor and for a returning one.

    New visitor: a fresh browser profile and a fresh server (nothing cached anywhere).
    Returning visitor: the server restarted (its caches cold), the browser's profile kept (its
    HTTP and compiled-code caches warm, as for anyone who opened the dashboard before).
    In-app: a click to another run page, the app already loaded.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out: dict = {"baseline_s": baseline_s()}
    with tempfile.TemporaryDirectory(prefix="hrm-dash-profile-") as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1000},
        )
        proc = start_dashboard(root, port)
        try:
            page = ctx.new_page()
            out["new_visitor_s"] = _first_chart_s(page, f"{url}/run?run=big")
            page.wait_for_function(
                "document.querySelectorAll('[data-testid=stEChartsChart] canvas').length >= 4",
                timeout=60_000,
            )
            t0 = time.perf_counter()
            page.get_by_role("link", name="ACT").first.click()
            page.get_by_text("Halting-step distribution").wait_for(timeout=60_000)
            page.locator(CHART).first.wait_for(state="visible")
            out["in_app_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            page.goto(f"{url}/")
            page.locator("[data-testid='stDataFrame']").wait_for(state="visible", timeout=60_000)
            out["runs_table_s"] = time.perf_counter() - t0
            page.close()
        finally:
            stop(proc)
        proc = start_dashboard(root, port)
        try:
            page = ctx.new_page()
            out["returning_visitor_s"] = _first_chart_s(page, f"{url}/run?run=big")
        finally:
            stop(proc)
            ctx.close()
    return out


def fleet(root: Path, sample: int = 40) -> None:
    """The Runs page over every run under `root`, from the daemon's summaries."""
    from playwright.sync_api import sync_playwright

    from hrm_doctor.rundir import find_runs, read_summary

    runs = find_runs(root)
    with_summary = sum(read_summary(r) is not None for r in runs)
    print(f"fleet: {len(runs)} runs under {root}, {with_summary} with a daemon's summary.json")
    code = (
        "import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
        "import streamlit as st; from dashboards import data;"
        "root = Path(sys.argv[1]); t = time.perf_counter(); df = data.runs_overview(root);"
        "a = time.perf_counter() - t; names = data.run_names(str(root))[: int(sys.argv[3])];"
        "t = time.perf_counter(); [data._live_row(n, root / n, 0.0) for n in names];"
        "b = (time.perf_counter() - t) / len(names); print(a, b, len(df))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root), str(REPO), str(sample)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    table_s, per_run_s, rows = out.stdout.split()[-3:]
    print(f"  the table's rows from the summaries: {float(table_s):.2f} s for {rows} runs")
    whole = float(per_run_s) * len(runs)
    print(
        f"  reading every run's telemetry for its row instead: {float(per_run_s) * 1e3:.0f} ms a "
        f"run ({sample} timed), {whole:.1f} s for all ({whole / float(table_s):.0f}x)"
    )
    port = free_port()
    proc = start_dashboard(root, port)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = b.new_page(viewport={"width": 1440, "height": 1000})
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("[data-testid='stDataFrame']").wait_for(state="visible", timeout=120_000)
            page.wait_for_function(
                "[...document.querySelectorAll('[data-testid=stMetricValue]')]"
                f".some(e => e.textContent.replace(/[^0-9]/g, '') === '{len(runs)}')",
                timeout=120_000,
            )
            took = time.perf_counter() - t0
            b.close()
    finally:
        stop(proc)
    print(f"  in Chromium, navigation -> Runs table visible, all {len(runs)} runs: {took:.2f} s")


# ---- screenshots for the docs --------------------------------------------------------------


def screenshots(dest: Path) -> None:
    """docs/img/dashboard-runs.png and dashboard-diagnosis.png, from the demo root."""
    from playwright.sync_api import sync_playwright

    from dashboards import sample_runs

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hrm-dash-shots-") as tmp:
        root = sample_runs.write_demo_root(Path(tmp) / "runs")
        port = free_port()
        proc = start_dashboard(root, port)
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = b.new_page(viewport={"width": 1400, "height": 980}, device_scale_factor=1)
                page.goto(f"{url}/")
                page.get_by_text("Needs attention").wait_for(timeout=60_000)
                page.wait_for_timeout(1500)  # the table's sparklines draw after it mounts
                page.screenshot(path=str(dest / "dashboard-runs.png"))
                page.set_viewport_size({"width": 1400, "height": 1180})
                page.goto(f"{url}/diagnosis?run=sudoku-lr3e-4")
                page.get_by_text("Gradient norm exploded").first.wait_for(timeout=60_000)
                page.wait_for_function(
                    "document.querySelectorAll('[data-testid=stEChartsChart] canvas').length >= 2",
                    timeout=60_000,
                )
                page.wait_for_timeout(1500)
                page.screenshot(path=str(dest / "dashboard-diagnosis.png"))
                page.set_viewport_size({"width": 1400, "height": 1000})
                page.goto(f"{url}/run?run=sudoku-lr3e-4&theme=Gradients")
                page.wait_for_function(
                    "document.querySelectorAll('[data-testid=stEChartsChart] canvas').length >= 3",
                    timeout=60_000,
                )
                page.wait_for_timeout(1500)
                page.screenshot(path=str(dest / "dashboard-run.png"))
                b.close()
        finally:
            stop(proc)
    for name in ("dashboard-runs.png", "dashboard-diagnosis.png", "dashboard-run.png"):
        print(f"wrote {dest / name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    ap.add_argument("--screenshots", type=Path, help="also write the docs screenshots here")
    ap.add_argument(
        "--only-screenshots", action="store_true", help="skip the measurements (with --screenshots)"
    )
    ap.add_argument("--fleet", type=Path, metavar="ROOT", help="the Runs page over a root of runs")
    args = ap.parse_args()
    if args.fleet:
        fleet(args.fleet)
        return 0
    if args.only_screenshots:
        if not args.screenshots:
            ap.error("--only-screenshots needs --screenshots DIR")
        screenshots(args.screenshots)
        return 0
    os.environ.setdefault("WANDB_MODE", "disabled")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} (other work inflates browser timings)")
    tmp = Path(tempfile.mkdtemp(prefix="hrm-dash-bench-"))
    try:
        root = write_bench_root(tmp / "runs", args.steps)
        server = server_side(root)
        print(f"\nfirst render, {args.steps:,}-step run, server side (AppTest), seconds:")
        print(f"  {'page':<12}{'caches cleared':>16}{'fresh process':>15}")
        for page in PAGES:
            print(
                f"  {page:<12}{server['warm_imports'][page]:>16.2f}{server['fresh'][page]:>15.2f}"
            )
        print(
            "  caches cleared: what the server does on a run's first visit (its modules are "
            "imported at start-up);\n  fresh process: also starting Python and importing "
            "Streamlit, pandas and the reader"
        )
        worst = max(server["warm_imports"].values())
        print(f"  worst page, caches cleared: {worst:.2f} s (target <= 3 s)")
        print(
            f"\nmost points in one series sent to the browser: {server['max_points']:,} "
            "(target <= ~4,000)"
        )
        ratio = server["raw_payload_bytes"] / max(server["run_payload_bytes"], 1)
        print(
            f"Run page (Losses tab) chart payload: {server['run_payload_bytes'] / 1e6:.2f} MB; "
            f"without downsampling {server['raw_payload_bytes'] / 1e6:.2f} MB ({ratio:.0f}x)"
        )
        if not args.no_browser:
            if not Path(CHROMIUM).exists():
                print(f"\nbrowser: skipped ({CHROMIUM} not installed)")
            else:
                br = browser_side(root)
                print("\nin Chromium (headless), a fresh `hrm-doctor dashboard`, seconds:")
                print("  Run page, navigation -> first chart visible:")
                print(f"    new visitor (empty browser profile):    {br['new_visitor_s']:.2f}")
                print(
                    f"    returning visitor (browser cache kept): {br['returning_visitor_s']:.2f}"
                )
                floor = br["baseline_s"]
                print(
                    f"    a bare Streamlit page with one such chart (this machine's floor): "
                    f"{floor:.2f} (ours / floor = {br['new_visitor_s'] / floor:.2f})"
                )
                print(f"  click Run -> ACT, first chart visible:    {br['in_app_s']:.2f}")
                print(f"  Runs page, navigation -> table visible:   {br['runs_table_s']:.2f}")
        if args.screenshots:
            screenshots(args.screenshots)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
