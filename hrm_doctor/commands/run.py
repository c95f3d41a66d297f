"""`hrm-doctor run [--apply] -- COMMAND...`: supervise a training command and heal it."""

from __future__ import annotations

import argparse

from hrm_doctor.commands import add_rules_argument

NAME = "run"
HELP = "launch a training command, watch it, and (with --apply) patch or roll back and restart it"
EXAMPLES = """\
examples:
  hrm-doctor run -- hrm-train experiment=smoke run_dir=runs/smoke
  hrm-doctor run --apply -- hrm-train experiment=smoke lr=3 run_dir=runs/bad-lr
  hrm-doctor run --apply --max-restarts 2 -- torchrun --nproc_per_node=2 -m hrm_core.pretrain task=sudoku_extreme_1k
  (in an sbatch script) hrm-doctor run --apply --launcher srun -- torchrun --nproc_per_node=8 --no-python hrm-train task=arc1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="apply patches: hot, or rollback+restart"
    )
    add_rules_argument(parser)
    parser.add_argument("--max-restarts", type=int, default=3, metavar="K", help="default: 3")
    parser.add_argument(
        "--launcher",
        default="local",
        choices=("local", "srun"),
        help="start the trainer here (default), or as a job step of this Slurm allocation",
    )
    parser.add_argument(
        "train_command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="-- then the training command",
    )


def run(args: argparse.Namespace) -> int:
    from hrm_doctor.commands.supervised import run_until_stopped, training_command
    from hrm_doctor.engine.packs import load_rule_set
    from hrm_doctor.errors import UserError
    from hrm_doctor.watch.console import PlainConsole
    from hrm_doctor.watch.supervisor import Supervisor

    command = training_command(args.train_command, "run [--apply]")
    if args.max_restarts < 0:
        raise UserError(f"--max-restarts {args.max_restarts}: must be >= 0")
    rule_set = load_rule_set(args.rules)
    console = PlainConsole()
    how = {}
    if args.launcher == "srun":
        from hrm_doctor.cluster.step import srun_launcher

        how["launch"] = srun_launcher(console)
    sup = Supervisor(
        command, rule_set, apply=args.apply, console=console, max_restarts=args.max_restarts, **how
    )
    return run_until_stopped(command, sup.run)
