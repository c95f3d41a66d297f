"""`hrm-doctor watch RUN_OR_ROOT`: the live daemon."""

from __future__ import annotations

import argparse

from hrm_doctor.commands import add_rules_argument

NAME = "watch"
HELP = "follow a run (or every run under a root) as it grows and write its findings"
EXAMPLES = """\
examples:
  hrm-doctor watch runs/exp42                    follow one run; findings go to runs/exp42/findings.jsonl
  hrm-doctor watch runs/                         every run under runs/, new runs picked up as they appear
  hrm-doctor watch runs/exp42 --once             evaluate what is there, write findings, exit (cron, scripts)
  hrm-doctor watch runs/ --on-finding 'notify-send hrm-doctor "$(jq -r .message)"'
  hrm-doctor watch wandb/latest-run              a run of the reference trainer, converted as it grows
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN_OR_ROOT", help="a run directory or a root of runs")
    add_rules_argument(parser)
    parser.add_argument("--apply", action="store_true", help="apply the suggested patches")
    parser.add_argument("--once", action="store_true", help="evaluate once, write findings, exit")
    parser.add_argument(
        "--poll", action="store_true", help="poll the files instead of waiting for file events"
    )
    parser.add_argument(
        "--tick", type=float, default=1.0, metavar="S", help="seconds between time-based checks"
    )
    parser.add_argument(
        "--on-finding",
        metavar="COMMAND",
        help="run COMMAND (a shell line) with each new finding as JSON on stdin",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain log lines even on a terminal (no live table)"
    )
    parser.add_argument(
        "--into",
        metavar="DIR",
        help="for a W&B run or TensorBoard logdir: where its converted run goes "
        "(default: SRC/../hrm-doctor/NAME)",
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading
    from pathlib import Path

    from hrm_doctor.engine.packs import load_rule_set
    from hrm_doctor.errors import UserError
    from hrm_doctor.watch.alerts import CommandAlerter, WandbAlerter
    from hrm_doctor.watch.console import LiveConsole, PlainConsole
    from hrm_doctor.watch.daemon import Daemon
    from hrm_doctor.watch.lock import RunLocked

    if args.tick <= 0:
        raise UserError(f"--tick {args.tick}: must be a positive number of seconds")
    target = Path(args.target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: not a directory")
    rule_set = load_rule_set(args.rules)
    live = sys.stdout.isatty() and not args.plain and not args.once
    console = LiveConsole() if live else PlainConsole()
    alerter = CommandAlerter(args.on_finding) if args.on_finding else None
    wandb_alerter = WandbAlerter()  # only acts on runs whose W&B mode is online

    def on_finding(run: str, finding, now: float, run_dir) -> None:
        if alerter is not None:
            alerter(run, finding, now, run_dir)
        try:
            wandb_alerter(run, finding, now, run_dir)
        except Exception as exc:  # W&B down or misconfigured: never stop the daemon for it
            console.note(f"W&B alert for {run} failed: {exc}")

    from hrm_doctor.watch.patches import PatchManager

    daemon = Daemon(
        target,
        rule_set,
        console=console,
        poll=args.poll,
        tick_s=args.tick,
        on_finding=on_finding,
        patches=lambda run: PatchManager(run, apply=args.apply),
        into=args.into,
    )
    try:
        if args.once:
            if not target.exists():
                raise UserError(f"{target}: no such run directory or root")
            n = daemon.once()
            console.note(f"{n} new finding(s)")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if not target.exists():
            console.note(f"waiting for {target} to appear")
        try:
            daemon.run(stop)
        except KeyboardInterrupt:
            stop.set()
        return 0
    except RunLocked as exc:
        raise UserError(str(exc)) from None
    finally:
        if alerter is not None:
            alerter.close()
        wandb_alerter.close()
