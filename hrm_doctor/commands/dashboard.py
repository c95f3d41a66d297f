"""`hrm-doctor dashboard [ROOT]`: serve the Streamlit dashboard over the runs under ROOT."""

from __future__ import annotations

import argparse

NAME = "dashboard"
HELP = "serve the live diagnosis of the runs under a root in the browser (Streamlit)"
EXAMPLES = """\
examples:
  hrm-doctor dashboard runs/                       http://127.0.0.1:8501
  hrm-doctor dashboard runs/ --port 8600 --host 0.0.0.0
  hrm-doctor dashboard runs/ --allow-apply         show Apply buttons on the Diagnosis page
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", nargs="?", default="runs", help="directory holding the runs (default: runs)"
    )
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for everyone)",
    )
    parser.add_argument(
        "--allow-apply",
        action="store_true",
        help="let the Diagnosis page request that a finding's patch be applied",
    )
    parser.add_argument(
        "--refresh-s",
        type=float,
        default=3.0,
        help="how often live panels read new telemetry, in seconds (default: 3)",
    )


def app_path():
    """The Streamlit entry point, found through the installed `dashboards` package."""
    from importlib.resources import files

    return files("dashboards").joinpath("streamlit_app.py")


def streamlit_command(args: argparse.Namespace, root: str) -> list[str]:
    import sys

    # `dashboards.serve` is `streamlit run streamlit_app.py` after importing the app's modules.
    cmd = [
        sys.executable,
        "-m",
        "dashboards.serve",
        "--server.port",
        str(args.port),
        "--server.address",
        args.host,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        # Red means "critical" on every page: keep Streamlit's red accent out of the way.
        "--theme.primaryColor",
        "#2563eb",
        "--theme.base",
        "light",
        "--",
        "--root",
        root,
        "--refresh-s",
        str(args.refresh_s),
    ]
    if args.allow_apply:
        cmd.append("--allow-apply")
    return cmd


def _port_free(host: str, port: int) -> bool:
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return True  # let Streamlit report an unknown host in its own words
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return False
    return True


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from hrm_doctor.errors import UserError

    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: not a TCP port (1..65535)")
    if args.refresh_s <= 0:
        raise UserError(f"--refresh-s {args.refresh_s:g}: must be positive")
    for module in ("streamlit", "tsdownsample", "pyarrow"):
        if importlib.util.find_spec(module) is None:
            raise UserError(f"the dashboard needs {module}: pip install 'hrm-doctor[dashboard]'")
    if not _port_free(args.host, args.port):
        raise UserError(f"--port {args.port}: already in use on {args.host} (try another port)")
    if not app_path().is_file():
        raise UserError(f"{app_path()}: the dashboard app is missing from this installation")
    root_s = str(root.resolve())
    env = dict(os.environ)
    env.update(
        HRM_DOCTOR_ROOT=root_s,
        HRM_DOCTOR_ALLOW_APPLY="1" if args.allow_apply else "0",
        HRM_DOCTOR_REFRESH_S=str(args.refresh_s),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
    host = f"[{shown}]" if ":" in shown else shown
    print(f"hrm-doctor dashboard: serving the runs under {root_s}", flush=True)
    print(f"  open http://{host}:{args.port}  (Ctrl-C to stop)", flush=True)
    if args.allow_apply:
        print("  --allow-apply: the Diagnosis page can request patches", flush=True)
    proc = subprocess.Popen(streamlit_command(args, root_s), env=env)

    def forward(signum, _frame):
        proc.send_signal(signum)

    old = signal.signal(signal.SIGTERM, forward)
    try:
        rc = proc.wait()
        # Stopped by a signal we forwarded (SIGTERM from a supervisor): a clean stop.
        return 0 if rc in (-signal.SIGTERM, -signal.SIGINT) else rc
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
        if proc.poll() is None:
            proc.kill()
        sys.stdout.flush()
