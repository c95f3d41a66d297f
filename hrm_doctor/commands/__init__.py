"""The CLI verbs, one module each.

Each module defines ``NAME`` (the verb), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules import only argparse-level things at import time: heavy imports
(pandas, numpy, torch, streamlit) happen inside ``run`` so that ``hrm-doctor --help`` stays fast.
"""

from __future__ import annotations

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
