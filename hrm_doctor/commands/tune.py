"""`hrm-doctor tune [...] -- hrm-train ...`: a doctor-guided hyperparameter search (Optuna)."""

from __future__ import annotations

import argparse

from hrm_doctor.commands import add_rules_argument

NAME = "tune"
HELP = "search hyperparameters with Optuna; the doctor prunes each trial it finds critically sick"
EXAMPLES = """\
examples:
  hrm-doctor tune --trials 8 --budget-steps 200 -- hrm-train experiment=smoke
  hrm-doctor tune --space space.yaml --study sudoku -- hrm-train task=sudoku_extreme_1k
  hrm-doctor tune --storage postgresql://tune@db:5432/optuna --study arc --root runs/arc -- hrm-train task=arc1
  hrm-doctor tune --report sudoku                        best trials, pruned trials, report.html
  hrm-doctor tune --launcher slurm --partition gpu --gpus-per-trial 1 --max-parallel 8 \
      --time 02:00:00 --root /shared/runs/sudoku -- hrm-train task=sudoku_extreme_1k

a space file maps Hydra keys to one of log/uniform/int/choice:
  lr: {log: [1.0e-5, 1.0e-2]}
  arch.H_cycles: {choice: [1, 2, 3]}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--trials", type=int, default=20, metavar="N", help="trials in the study (default: 20)")
    a(
        "--budget-steps",
        type=int,
        metavar="S",
        help="max_steps of each trial (default: its schedule)",
    )
    a("--space", metavar="FILE", help="search space YAML (default: the task preset's)")
    a("--cycles", action="store_true", help="also search arch.H_cycles and arch.L_cycles")
    a("--storage", metavar="URL", help="Optuna storage URL (default: sqlite ROOT/study.db)")
    a("--study", metavar="NAME", help="study name (default: the task preset, else 'study')")
    a("--root", metavar="DIR", help="where trial runs go (default: runs/tune-STUDY)")
    a("--metric", default=None, metavar="NAME", help="objective (default: eval/all/exact_accuracy)")
    a("--prune-on", default="critical", choices=("critical", "warning", "never"),
      help="finding severity that prunes a trial (default: critical)")  # fmt: skip
    a("--sampler", default="tpe", choices=("tpe", "random", "grid"), help="default: tpe")
    a("--pruner", default="none", choices=("none", "median"),
      help="Optuna's own pruner on eval values, besides the doctor (default: none)")  # fmt: skip
    a("--seed", type=int, metavar="N", help="sampler seed")
    add_rules_argument(parser)
    add_slurm_arguments(parser)
    a("--report", metavar="STUDY", help="report on a study instead of running trials")
    a("--html", metavar="FILE", help="with --report: the HTML file (default: ROOT/report.html)")
    # not `command`: cli.main reads args.command as the verb's name
    a("train_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the training command")


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("trials as Slurm jobs (docs/cluster.md)")
    a = g.add_argument
    a("--launcher", default="local", choices=("local", "slurm"),
      help="run each trial here (default) or as a Slurm job (sbatch)")  # fmt: skip
    a("--partition", metavar="P", help="the jobs' partition (default: the cluster's)")
    a(
        "--gpus-per-trial",
        type=int,
        metavar="N",
        help="GPUs per job (N > 1: torchrun, one rank each)",
    )
    a("--cpus-per-trial", type=int, metavar="N", help="CPUs per job (default: the cluster's)")
    a("--time", metavar="HH:MM:SS", help="time limit of each job (a job that hits it is retried)")
    a("--max-parallel", type=int, metavar="K", help="trials queued or running at once (default: 4)")
    a("--retries", type=int, metavar="R",
      help="resubmissions of a preempted or failed job, from its checkpoint (default: 2)")  # fmt: skip
    a("--slurm-arg", action="append", metavar="ARG",
      help="another sbatch option, e.g. --slurm-arg=--account=abc (repeatable)")  # fmt: skip


_SLURM_FLAGS = ("partition", "gpus_per_trial", "cpus_per_trial", "time", "max_parallel", "retries",
                "slurm_arg")  # fmt: skip
# Slurm's --time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME_RE = r"(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})"


def slurm_options(args: argparse.Namespace):
    """The Slurm options of the command line, checked; None for the local launcher."""
    import re

    from hrm_doctor.errors import UserError

    given = [f for f in _SLURM_FLAGS if getattr(args, f) is not None]
    if args.launcher != "slurm":
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(f"{flag}: only with --launcher slurm")
        return None
    from hrm_doctor.cluster.batch import SlurmOptions
    from hrm_doctor.cluster.slurm import require_clients

    require_clients("--launcher slurm")
    for name in ("gpus_per_trial", "cpus_per_trial", "retries", "max_parallel"):
        value, least = getattr(args, name), 1 if name in ("cpus_per_trial", "max_parallel") else 0
        if value is not None and value < least:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be >= {least}")
    if args.time is not None and not re.fullmatch(_TIME_RE, args.time):
        raise UserError(f"--time {args.time}: not a Slurm time (HH:MM:SS, MM, D-HH:MM, ...)")
    return SlurmOptions(
        partition=args.partition,
        gpus_per_trial=args.gpus_per_trial or 0,
        cpus_per_trial=args.cpus_per_trial,
        time=args.time,
        retries=2 if args.retries is None else args.retries,
        extra=tuple(args.slurm_arg or ()),
    )


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hrm_doctor.errors import UserError
    from hrm_doctor.tune.report import text_report, write_html
    from hrm_doctor.tune.storage import (
        STUDY_FILE,
        default_root,
        open_storage,
        redact,
        resolve_storage,
    )

    root = Path(args.root) if args.root else default_root(args.report)
    if args.storage is None and not (root / STUDY_FILE).is_file():
        raise UserError(f"{root / STUDY_FILE}: no such study file (give --root or --storage)")
    url = resolve_storage(args.storage, root)
    storage = open_storage(url, heartbeat=False)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.report, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UserError(
            f"{redact(url)}: no study named {args.report!r} (there: {', '.join(names) or 'none'})"
        ) from None
    print(text_report(study, redact(url)))
    html_path = write_html(
        study, Path(args.html) if args.html else root / "report.html", redact(url)
    )
    print(f"\nHTML report: {html_path}")
    return 0


def _executable(name: str) -> str:
    """The program to launch: on PATH, or beside this Python (a venv that was not activated)."""
    import shutil
    import sys
    from pathlib import Path

    from hrm_doctor.errors import UserError

    if shutil.which(name):
        return name
    beside = Path(sys.executable).parent / name
    if "/" not in name and beside.is_file():
        return str(beside)
    raise UserError(f"{name}: cannot start the training command (not found on PATH)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hrm_doctor.commands.supervised import run_until_stopped, training_command
    from hrm_doctor.errors import UserError

    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("optuna is not installed: pip install 'optuna>=4,<6'") from None
    if args.report:
        return _report(args)
    from hrm_doctor.tune.space import default_space, load_space, preset_of
    from hrm_doctor.tune.storage import default_root, redact, resolve_storage
    from hrm_doctor.tune.study import DEFAULT_METRIC, TuneSettings, run_study

    command = training_command(args.train_command, "tune")
    executable = _executable(command[0])
    if args.trials < 1:
        raise UserError(f"--trials {args.trials}: must be >= 1")
    if args.budget_steps is not None and args.budget_steps < 1:
        raise UserError(f"--budget-steps {args.budget_steps}: must be >= 1")
    preset = preset_of(command)
    space = load_space(args.space) if args.space else default_space(preset, cycles=args.cycles)
    study_name = args.study or preset or "study"
    root = Path(args.root) if args.root else default_root(study_name)
    url = resolve_storage(args.storage, root)
    slurm = slurm_options(args)
    settings = TuneSettings(
        command=command,
        space=space,
        root=root,
        storage_url=url,
        study_name=study_name,
        trials=args.trials,
        budget_steps=args.budget_steps,
        metric=args.metric or DEFAULT_METRIC,
        prune_on=args.prune_on,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        rules=args.rules,
        executable=executable,
        slurm=slurm,
        max_parallel=1 if slurm is None else args.max_parallel or 4,
    )
    if args.sampler == "grid":
        space.grid()  # fails early when the space is not all choices

    def say(text: str) -> None:
        print(f"hrm-doctor tune: {text}", flush=True)

    say(f"study {study_name} in {redact(url)}; space: {space.source}; trials under {root}")
    if slurm is not None:
        say(
            f"each trial a Slurm job, {settings.max_parallel} at once (scripts in {root / 'slurm'})"
        )

    def body(stop) -> int:
        from hrm_doctor.tune.report import text_report

        if slurm is not None:  # Ctrl-C too cancels the jobs (trials run in worker threads)
            import signal

            signal.signal(signal.SIGINT, lambda *_: stop.set())

        study = run_study(settings, console=say, stop=stop)
        print(text_report(study, redact(url)))
        print(f"\nfull report: hrm-doctor tune --report {study_name} --root {root}")
        return 130 if stop.is_set() else 0

    return run_until_stopped(command, body)
