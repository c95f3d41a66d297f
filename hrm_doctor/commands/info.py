"""`hrm-doctor info RUN`: what a run is (steps, ranks, metrics, time span, size, writer status)."""

from __future__ import annotations

import argparse
import json

NAME = "info"
HELP = "what a run is: steps, ranks, metrics, time span, size on disk, writer status, lineage"
EXAMPLES = """\
examples:
  hrm-doctor info runs/exp42
  hrm-doctor info runs/exp42 --json | jq .last_step
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from hrm_doctor.rundir import read_lineage
    from hrm_doctor.runs import human_age, human_bytes, summarise_run

    s = summarise_run(args.run)
    if args.json:
        print(json.dumps(s.to_json(), indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    span = "-" if s.first_step is None else f"{s.first_step} .. {s.last_step} ({s.steps} steps)"
    rows = [
        ("run", s.path),
        ("run id", s.run_id or "-"),
        ("program", s.program or "-"),
        ("status", s.status),
        ("steps", span),
        ("ranks", f"{len(s.ranks)} of world size {s.world_size}" if s.ranks else "-"),
        ("metrics", f"{s.metrics} scalar, {s.tensors} tensor"),
        ("parameters", f"{s.num_params:,}" if s.num_params else "-"),
        ("started", human_age(s.start_time)),
        ("last write", human_age(s.last_write_time)),
        ("steps/s", f"{s.steps_per_s:.2f}" if s.steps_per_s else "-"),
        ("size on disk", human_bytes(s.size_bytes)),
        ("sessions", str(s.sessions)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console = Console(highlight=False)
    console.print(table)
    restarts = [e for e in read_lineage(args.run) if e.get("event") == "restart"]
    if restarts or any(e["session"] > 1 for e in s.lineage):
        console.print("[bold]lineage[/bold]")
        for e in s.lineage:
            console.print(
                f"  rank {e['rank']} session {e['session']}: steps {e['first_step']}..{e['last_step']}"
                + (f", from step {e['branch_step']}" if e["session"] > 1 else "")
                + f" ({e['status']})"
            )
    for e in restarts:
        console.print(
            f"  restart {e['restart']}: after {e['finding_id']}, rolled back to step "
            f"{e['from_step']} with {' '.join(e.get('overrides') or [])}"
            + (f", skipping {e['skip_batches']} batches" if e.get("skip_batches") else "")
        )
    for name, offset in s.corrupt_segments:
        console.print(
            f"[yellow]warning[/yellow]: telemetry/{name}: unreadable frame at byte {offset}"
        )
    return 0
