"""`hrm-doctor runs ROOT`: a table of every run under a root."""

from __future__ import annotations

import argparse
import json

NAME = "runs"
HELP = "a table of the runs under a root: status, steps, ranks, metrics, size, last write"
EXAMPLES = """\
examples:
  hrm-doctor runs runs/
  hrm-doctor runs multirun/2026-11-26 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", nargs="?", default="runs", help="directory to search (default: runs)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hrm_doctor.errors import UserError
    from hrm_doctor.runs import find_runs, human_age, human_bytes, summarise_run

    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    summaries = [summarise_run(p) for p in find_runs(root)]
    if args.json:
        for s in summaries:
            print(json.dumps(s.to_json(), default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not summaries:
        console.print(f"no runs under {root}")
        return 0
    table = Table(title=f"runs under {root}")
    for col in ("run", "status", "last step", "ranks", "metrics", "steps/s", "size", "last write"):
        table.add_column(
            col,
            justify="right"
            if col in ("last step", "ranks", "metrics", "steps/s", "size")
            else "left",
        )
    for s in summaries:
        rel = str(Path(s.path).relative_to(root)) if Path(s.path) != root else "."
        table.add_row(
            rel,
            s.status,
            "-" if s.last_step is None else str(s.last_step),
            str(len(s.ranks)),
            str(s.metrics),
            f"{s.steps_per_s:.2f}" if s.steps_per_s else "-",
            human_bytes(s.size_bytes),
            human_age(s.last_write_time),
        )
    console.print(table)
    return 0
