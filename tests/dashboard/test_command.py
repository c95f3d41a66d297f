"""`hrm-doctor dashboard`: its errors, and the Streamlit command line it builds."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from hrm_doctor.cli import main
from hrm_doctor.commands import dashboard


def test_missing_root_is_a_one_line_error(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err == f"hrm-doctor dashboard: error: {tmp_path / 'nope'}: no such directory\n"


def test_bad_port_is_a_one_line_error(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path), "--port", "70000"]) == 2
    assert "--port 70000: not a TCP port" in capsys.readouterr().err


def test_streamlit_command_serves_the_packaged_app_on_localhost(tmp_path):
    args = argparse.Namespace(port=8601, host="127.0.0.1", allow_apply=True, refresh_s=2.0)
    cmd = dashboard.streamlit_command(args, str(tmp_path))
    assert cmd[1:3] == ["-m", "dashboards.serve"]
    app = Path(dashboard.app_path())
    assert app.name == "streamlit_app.py" and app.is_file()
    assert (app.parent / "app_pages" / "diagnosis.py").is_file()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8601"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    tail = cmd[cmd.index("--") + 1 :]
    assert tail == ["--root", str(tmp_path), "--refresh-s", "2.0", "--allow-apply"]


def test_dashboard_is_listed_in_help(capsys):
    with contextlib.suppress(SystemExit):
        main(["--help"])
    assert "dashboard" in capsys.readouterr().out


def test_port_in_use_is_a_one_line_error(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    assert f"--port {port}: already in use on 127.0.0.1" in capsys.readouterr().err
