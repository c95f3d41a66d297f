"""The CLI verbs, one module each.

Each module defines ``NAME`` (the verb), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules import only argparse-level things at import time: heavy imports
(pandas, numpy, torch, streamlit) happen inside ``run`` so that ``hrm-doctor --help`` stays fast.
"""

from __future__ import annotations

import argparse

# The order here is the order in `hrm-doctor --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "info",
    "runs",
    "watch",
    "run",
    "tune",
    "explain",
    "import_",
    "rules",
    "dashboard",
)


def add_rules_argument(parser: argparse.ArgumentParser) -> None:
    """`--rules PACK...`: which rules judge the run (every verb that runs the engine)."""
    parser.add_argument(
        "--rules",
        nargs="+",
        action="extend",
        metavar="PACK",
        help="built-in pack names (default: all) and/or rule-pack files to add or override rules",
    )
