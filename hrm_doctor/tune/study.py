"""The search loop: an Optuna study whose objective is one watched `hrm-train` run per trial.

Workers (one `hrm-doctor tune` process each, on one machine or many) share a study through its
storage; `--trials N` is the study's total, so N trials are run whatever the number of workers
(give or take one per worker that started at the same moment).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError
from hrm_doctor.tune.space import SearchSpace, format_override
from hrm_doctor.tune.trial import run_trial, trial_command

DEFAULT_METRIC = "eval/all/exact_accuracy"


def direction_of(metric: str) -> str:
    """Losses are minimised, accuracies (everything else) maximised."""
    return "minimize" if "loss" in metric.rsplit("/", 1)[-1] else "maximize"


class TrialError(Exception):
    """A trial that could not produce a value (the trainer failed); the study goes on."""


@dataclass
class TuneSettings:
    command: list[str]
    space: SearchSpace
    root: Path
    storage_url: str
    study_name: str
    trials: int
    budget_steps: int | None = None
    metric: str = DEFAULT_METRIC
    prune_on: str = "critical"
    sampler: str = "tpe"
    pruner: str = "none"
    seed: int | None = None
    rules: list[str] | None = None
    executable: str | None = None  # command[0] as found (the study records command as given)
    slurm: Any = None  # hrm_doctor.cluster.batch.SlurmOptions: each trial a Slurm job
    max_parallel: int = 1  # trials at once (Slurm jobs; local trials run one at a time)


def make_sampler(name: str, space: SearchSpace, seed: int | None) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise UserError(f"--sampler {name}: unknown (tpe, random, grid)")


def make_pruner(name: str) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    raise UserError(f"--pruner {name}: unknown (none, median)")


def open_study(s: TuneSettings, storage: Any) -> Any:
    """Create the study or join it; a worker must agree with the study's objective."""
    import optuna

    direction = direction_of(s.metric)
    study = optuna.create_study(
        storage=storage,
        study_name=s.study_name,
        direction=direction,
        sampler=make_sampler(s.sampler, s.space, s.seed),
        pruner=make_pruner(s.pruner),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise UserError(
            f"--study {s.study_name}: the study {study.direction.name.lower()}s, but --metric "
            f"{s.metric} asks to {direction}"
        )
    attrs = study.user_attrs
    if attrs.get("metric") not in (None, s.metric):
        raise UserError(
            f"--study {s.study_name}: the study's metric is {attrs['metric']}, not {s.metric}"
        )
    if "command" not in attrs:
        study.set_user_attr("command", list(s.command))
        study.set_user_attr("metric", s.metric)
        study.set_user_attr("budget_steps", s.budget_steps)
        study.set_user_attr("space", s.space.to_json())
        study.set_user_attr("prune_on", s.prune_on)
    return study


def run_study(s: TuneSettings, *, console: Any = print, stop: threading.Event | None = None):
    """Run trials until the study holds `s.trials` of them; returns the study."""
    import optuna

    from hrm_doctor.engine.packs import load_rule_set
    from hrm_doctor.tune.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # we say what each trial did
    rule_set = load_rule_set(s.rules)
    s.root.mkdir(parents=True, exist_ok=True)
    storage = open_storage(s.storage_url)
    study = open_study(s, storage)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    launcher = None
    if s.slurm is not None:
        from hrm_doctor.cluster.batch import SlurmLauncher

        launcher = SlurmLauncher(s.slurm, s.root / "slurm", s.study_name)

    def objective(trial: Any) -> float:
        params = s.space.suggest(trial)
        overrides = [format_override(k, v) for k, v in params.items()]
        run_dir = (s.root / f"trial-{trial.number:04d}").resolve()
        log_path = s.root / "logs" / f"trial-{trial.number:04d}.log"
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", worker)

        def on_eval(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        program = [s.executable or s.command[0], *s.command[1:]]
        cmd = trial_command(program, overrides, run_dir, s.budget_steps)
        how = {}
        if launcher is not None:
            how["launch"] = partial(launcher.launch, run_dir=run_dir, trial=trial.number)
        out = run_trial(
            cmd, run_dir, log_path, rule_set, metric=s.metric, prune_on=s.prune_on,
            on_eval=on_eval, stop=stop, **how,
        )  # fmt: skip
        for key, value in out.launch.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("steps_run", out.steps_run)
        trial.set_user_attr("wall_s", round(out.wall_s, 2))
        trial.set_user_attr("health", out.health)
        trial.set_user_attr("findings", out.findings)
        trial.set_user_attr("exit_code", out.exit_code)
        where = f"job {out.launch['slurm_jobs'][-1]}" if "slurm_jobs" in out.launch else worker
        head = f"trial {trial.number} [{where}] {' '.join(overrides)}"
        if out.status == "pruned":
            trial.set_user_attr("pruned_by", out.pruned_by)
            if out.finding is not None:
                f = out.finding
                trial.set_user_attr("finding", f)
                why = f"{f['id']} ({f['severity']} {f['category']}): {f['message']}"
            else:
                why = "Optuna's pruner (below the median at this eval)"
            cancelled = f"; job {out.launch['slurm_jobs'][-1]} cancelled" if where != worker else ""
            console(
                f"{head} -> pruned at step {out.steps_run} ({out.wall_s:.1f} s) by {why}{cancelled}"
            )
            raise optuna.TrialPruned(why)
        if out.status == "failed":
            trial.set_user_attr("error", out.error)
            if out.fatal:
                fatal.append(out.error)
                study.stop()
            console(f"{head} -> failed: {out.error}")
            raise TrialError(out.error)
        console(
            f"{head} -> {s.metric}={out.value:.4g} at step {out.steps_run} "
            f"({out.wall_s:.1f} s, {out.health})"
        )
        return out.value

    def enough(study: Any, _trial: Any) -> None:
        if stop is not None and stop.is_set() or len(study.get_trials(deepcopy=False)) >= s.trials:
            study.stop()

    fatal: list[str] = []
    try:
        if len(study.get_trials(deepcopy=False)) < s.trials:
            study.optimize(
                objective, n_trials=s.trials, callbacks=[enough], catch=(TrialError,),
                gc_after_trial=False, n_jobs=max(1, s.max_parallel),
            )  # fmt: skip
    finally:
        if launcher is not None and launcher.cancel_all():
            console("cancelled the Slurm jobs of the trials still running")
    if fatal:
        raise UserError(fatal[0])
    return study
