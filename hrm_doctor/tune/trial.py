"""One trial: launch `hrm-train` in its own run directory, watch it with the rule engine, report
each evaluation, and stop it the moment a finding at or above the pruning severity appears."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_doctor.overrides import with_overrides
from hrm_doctor.rundir import is_run_dir
from hrm_doctor.severity import severity_rank, worst
from hrm_doctor.watch.process import TrainerProcess

# a train metric is noisy: its objective value is the mean over the last few logged steps
_TAIL_STEPS = 10


@dataclass
class TrialOutcome:
    """What one trial did. `finding` is the pruning finding (DESIGN.md JSON) or None."""

    status: str  # "complete" | "pruned" | "failed"
    value: float | None = None
    steps_run: int = 0
    finding: dict[str, Any] | None = None
    pruned_by: str | None = None  # "doctor" | "optuna"
    health: str = "healthy"  # worst finding severity seen
    findings: list[str] = field(default_factory=list)  # ids
    evals: list[tuple[int, float]] = field(default_factory=list)
    exit_code: int | None = None
    launch: dict[str, Any] = field(default_factory=dict)  # the launcher's record (Slurm jobs)
    wall_s: float = 0.0
    error: str | None = None
    fatal: bool = False  # every trial of the study would fail the same way: stop the study


def first_eval_step(config: dict[str, Any], meta: dict[str, Any]) -> int | None:
    """The step of a run's first evaluation (the end of its first eval_interval pass), or None
    when the run's config does not say."""
    try:
        total, epochs = int(meta["total_steps"]), int(config["epochs"])
        passes = max(1, epochs // int(config["eval_interval"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return max(1, total // passes)


def _no_eval_error(metric: str, first: int, budget: int) -> str:
    return (
        f"--metric {metric}: the first eval is at step {first}, after the budget of {budget} "
        "steps: give a larger --budget-steps, a smaller eval_interval, or --metric train/lm_loss"
    )


def trial_command(
    command: list[str], overrides: list[str], run_dir: Path, budget_steps: int | None
):
    extra = [*overrides, f"run_dir={run_dir}"]
    if budget_steps is not None:
        extra.append(f"max_steps={budget_steps}")
    return with_overrides(command, extra)


def launch_local(command: list[str], log_path: Path) -> TrainerProcess:
    """The trainer as a child process of this one, its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return TrainerProcess(command, log=log)


def run_trial(
    command: list[str],
    run_dir: Path,
    log_path: Path,
    rule_set: Any,
    *,
    metric: str,
    prune_on: str = "critical",
    on_eval: Callable[[int, float], bool] | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 0.25,
    stop_grace_s: float = 10.0,
    launch: Callable[[list[str], Path], Any] = launch_local,
) -> TrialOutcome:
    """Run `command` (which already names `run_dir`) to its end or until it is pruned.

    `on_eval(step, value)` is called at each new value of an `eval/*` metric (or at the end for
    a train metric) and returns True when Optuna's own pruner wants the trial stopped.
    `launch(command, log_path)` starts the trainer: a local process, or a Slurm job
    (`hrm_doctor.cluster.batch`); either is stopped the same way.
    """
    from hrm_doctor.telemetry import RunReader
    from hrm_doctor.watch.monitor import RunMonitor

    out = TrialOutcome(status="complete")
    threshold = severity_rank(prune_on) if prune_on != "never" else 99
    is_eval = metric.startswith("eval/")
    tail: list[float] = []
    t0 = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    trainer = launch(command, log_path)

    def stop_trainer(finding_id: str | None = None) -> None:
        trainer.stop(stop_grace_s, request_in=run_dir, finding_id=finding_id)

    monitor: RunMonitor | None = None
    reader = None
    checked_eval = True
    pruning: Any = None
    try:
        while True:
            ended = not trainer.running()
            if monitor is None and is_run_dir(run_dir):
                monitor = RunMonitor(run_dir, rule_set)
                reader = RunReader(run_dir, keep_history=False)
                checked_eval = not is_eval
            if monitor is not None and not checked_eval and reader.meta.get("total_steps"):
                # an eval metric that cannot appear within the budget: say so now, not at the end
                checked_eval = True
                config, meta = reader.config or {}, reader.meta
                first = first_eval_step(config, meta)
                budget = min(int(meta["total_steps"]), config.get("max_steps") or 1 << 62)
                if first is not None and first > budget:
                    out.status, out.fatal = "failed", True
                    out.error = _no_eval_error(metric, first, budget)
                    stop_trainer()
                    break
            if monitor is not None:
                found = monitor.update(time.time())
                if ended:
                    found += monitor.finish()
                for f in found:
                    out.findings.append(f.id)
                    out.health = worst([out.health, f.severity])
                    if pruning is None and f.severity_rank >= threshold:
                        pruning = f
                df = reader.poll()
                if len(df):
                    out.steps_run = max(out.steps_run, int(df["step"].max()))
                    if metric in df.columns:
                        rows = df[["step", metric]].dropna()
                        rows = rows.groupby("step", sort=True)[metric].mean()
                        for step, value in rows.items():
                            value = float(value)
                            if is_eval:
                                out.evals.append((int(step), value))
                                if on_eval is not None and on_eval(int(step), value):
                                    out.pruned_by = out.pruned_by or "optuna"
                            else:
                                tail = (tail + [value])[-_TAIL_STEPS:]
            if pruning is not None:
                out.status, out.pruned_by = "pruned", "doctor"
                out.finding = pruning.to_json()
                stop_trainer(pruning.id)
                break
            if out.pruned_by == "optuna":
                out.status = "pruned"
                stop_trainer()
                break
            if ended:
                break
            if stop is not None and stop.is_set():
                out.status, out.error = "failed", "interrupted"
                stop_trainer()
                break
            time.sleep(poll_s)
    finally:
        stop_trainer()
        if reader is not None:  # the steps a stopped trainer ran before it saw the request
            df = reader.poll()
            if len(df):
                out.steps_run = max(out.steps_run, int(df["step"].max()))
        if monitor is not None:
            monitor.close()
    out.exit_code = trainer.returncode
    out.launch = trainer.attributes()
    out.wall_s = time.monotonic() - t0
    if out.status != "complete":
        return out
    if out.exit_code != 0:
        out.status = "failed"
        out.error = f"{Path(command[0]).name} {trainer.exit_reason()} (log: {log_path})"
    elif is_eval and out.evals:
        out.value = out.evals[-1][1]  # the metric at the budget
    elif not is_eval and tail:
        out.value = sum(tail) / len(tail)
        if on_eval is not None:
            on_eval(out.steps_run, out.value)
    else:
        out.status = "failed"
        out.error = (
            f"no {metric} logged within the budget (an eval happens at the end of each "
            "eval_interval pass: give a --budget-steps that reaches one, or --metric train/lm_loss)"
        )
    return out
