"""`hrm-doctor runs ROOT`: a table of every run under a root, healthiest and best first."""

from __future__ import annotations

import argparse
import json

NAME = "runs"
HELP = "a table of the runs under a root, healthiest and best first (a sweep's trials ranked)"
EXAMPLES = """\
examples:
  hrm-doctor runs runs/
  hrm-doctor runs runs/sweep --json
"""

_STYLES = {"healthy": "green", "info": "cyan", "warning": "yellow", "critical": "bold red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", nargs="?", default="runs", help="directory to search (default: runs)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from hrm_doctor.errors import UserError
    from hrm_doctor.rundir import find_runs
    from hrm_doctor.runs import human_age, human_bytes, rank_runs, summarise_run

    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory")
    summaries = rank_runs([summarise_run(p) for p in find_runs(root)])
    if args.json:
        for s in summaries:
            print(json.dumps(s.to_json(), default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    # a pipe or a file gets whole lines (rich would wrap at 80 columns)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    if not summaries:
        console.print(f"no runs under {root}")
        return 0
    table = Table(title=f"runs under {root}")
    right = ("last step", "ranks", "headline", "steps/s", "size")
    columns = ("run", "health", "status", "last step", "ranks", "headline", "steps/s", "size")
    for col in (*columns, "last write"):
        table.add_column(col, justify="right" if col in right else "left", no_wrap=True)
    for s in summaries:
        rel = str(Path(s.path).relative_to(root)) if Path(s.path) != root else "."
        health = s.health or "not watched"
        style = _STYLES.get(health, "dim")
        headline = "-"
        if s.headline_value is not None and s.headline:
            headline = f"{s.headline.split('/')[-1]} {s.headline_value:.4g}"
        table.add_row(
            rel,
            f"[{style}]{health}[/{style}]",
            s.status,
            "-" if s.last_step is None else str(s.last_step),
            str(len(s.ranks)),
            headline,
            f"{s.steps_per_s:.2f}" if s.steps_per_s else "-",
            human_bytes(s.size_bytes),
            human_age(s.last_write_time),
        )
    console.print(table)
    return 0
