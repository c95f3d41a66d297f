"""Where the dashboard looks and what it may do: resolved argument -> environment -> default.

`hrm-doctor dashboard` passes its options after ``--`` (``streamlit run app.py -- --root R``) and
also in the environment, so that a page run alone (an AppTest, ``streamlit run app_pages/x.py``)
sees the same settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_ROOT = "HRM_DOCTOR_ROOT"
ENV_ALLOW_APPLY = "HRM_DOCTOR_ALLOW_APPLY"
ENV_REFRESH_S = "HRM_DOCTOR_REFRESH_S"
DEFAULT_ROOT = "runs"
DEFAULT_REFRESH_S = 3.0
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Settings:
    """The dashboard's options for this server process."""

    root: Path  # directory searched for runs
    allow_apply: bool  # show Apply buttons (the server was started with --allow-apply)
    refresh_s: float  # live panels re-read new telemetry this often


def _argv_options() -> argparse.Namespace:
    """Options after ``--`` on the ``streamlit run`` line; only when the app itself is the script.

    Under pytest (AppTest) ``sys.argv`` belongs to pytest, so it is left alone.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--root")
    parser.add_argument("--allow-apply", action="store_true", default=None)
    parser.add_argument("--refresh-s", type=float)
    script = Path(sys.argv[0]).name if sys.argv else ""
    if not script.endswith(".py") or "pytest" in script:
        return parser.parse_args([])
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def load_settings() -> Settings:
    opts = _argv_options()
    root = opts.root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    allow = opts.allow_apply
    if allow is None:
        allow = os.environ.get(ENV_ALLOW_APPLY, "").strip().lower() in _TRUE
    refresh = opts.refresh_s
    if refresh is None:
        try:
            refresh = float(os.environ.get(ENV_REFRESH_S, DEFAULT_REFRESH_S))
        except ValueError:
            refresh = DEFAULT_REFRESH_S
    return Settings(
        root=Path(root).expanduser(), allow_apply=bool(allow), refresh_s=max(0.5, refresh)
    )
