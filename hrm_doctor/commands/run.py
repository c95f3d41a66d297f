"""`hrm-doctor run [--apply] -- COMMAND...`: supervise a training command and heal it."""

from __future__ import annotations

import argparse

NAME = "run"
HELP = "launch a training command, watch it, and (with --apply) patch or roll back and restart it"
EXAMPLES = """\
examples:
  hrm-doctor run -- hrm-train experiment=smoke run_dir=runs/smoke
  hrm-doctor run --apply -- hrm-train experiment=smoke lr=3 run_dir=runs/bad-lr
  hrm-doctor run --apply --max-restarts 2 -- torchrun --nproc_per_node=2 -m hrm_core.pretrain task=sudoku_extreme_1k
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="apply patches: hot, or rollback+restart"
    )
    parser.add_argument("--rules", nargs="+", metavar="PACK", help="packs (default: all built-in)")
    parser.add_argument("--max-restarts", type=int, default=3, metavar="K", help="default: 3")
    parser.add_argument(
        "train_command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="-- then the training command",
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from hrm_doctor.engine.packs import load_rule_set
    from hrm_doctor.errors import UserError
    from hrm_doctor.supervisor import Supervisor
    from hrm_doctor.watch.console import PlainConsole

    command = list(args.train_command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UserError("no training command: use `hrm-doctor run [--apply] -- hrm-train ...`")
    if args.max_restarts < 0:
        raise UserError(f"--max-restarts {args.max_restarts}: must be >= 0")
    rule_set = load_rule_set(args.rules)
    sup = Supervisor(
        command, rule_set, apply=args.apply, console=PlainConsole(), max_restarts=args.max_restarts
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return sup.run(stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    except FileNotFoundError as exc:
        raise UserError(
            f"{command[0]}: cannot start the training command ({exc.strerror})"
        ) from None
