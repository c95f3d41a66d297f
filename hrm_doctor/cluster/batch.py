"""A training command as a Slurm batch job (one trial of `hrm-doctor tune --launcher slurm`).

The job script is written next to the study (`ROOT/slurm/trial-NNNN.sh`, rerunnable by hand with
`sbatch`). It runs the trainer with the environment of the `hrm-doctor` that submitted it (its
PATH and PYTHONPATH written into the script, the rest through `--export=ALL`). A job that Slurm
requeues (preemption, `scontrol requeue`, a node failure) reruns the same script, and a job that
ended for a reason outside the training (preempted, node failure, time limit, a crash) is
submitted again, up to `retries` times: both continue from the trial's newest checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_doctor.cluster.slurm import RETRYABLE, JobTable, SlurmError, cancel, exit_code, submit
from hrm_doctor.errors import UserError
from hrm_doctor.overrides import with_overrides
from hrm_doctor.rundir import CHECKPOINTS_DIR

# hrm-train's exit status for an error a user caused (a bad key, data that does not fit): the
# same job would fail the same way, so it is not retried
USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class SlurmOptions:
    """What every trial's job asks Slurm for (`hrm-doctor tune --partition ... --time ...`)."""

    partition: str | None = None
    gpus_per_trial: int = 0
    cpus_per_trial: int | None = None
    time: str | None = None  # Slurm's --time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    retries: int = 2  # resubmissions of a job that ended for a reason outside the training
    extra: tuple[str, ...] = field(default_factory=tuple)  # more sbatch options, verbatim

    def directives(self) -> list[str]:
        out = ["--nodes=1", "--ntasks=1"]
        if self.partition:
            out.append(f"--partition={self.partition}")
        if self.time:
            out.append(f"--time={self.time}")
        if self.gpus_per_trial:
            out.append(f"--gres=gpu:{self.gpus_per_trial}")
        if self.cpus_per_trial:
            out.append(f"--cpus-per-task={self.cpus_per_trial}")
        return out + list(self.extra)


def _program(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name) or name


def per_trial_command(command: list[str], gpus: int) -> list[str]:
    """The command a trial's job runs: under torchrun, one rank per GPU, when it has several."""
    if gpus <= 1 or Path(command[0]).name == "torchrun":
        return list(command)
    return [_program("torchrun"), "--standalone", f"--nproc_per_node={gpus}", "--no-python",
            *command]  # fmt: skip


def job_script(
    command: list[str], *, run_dir: Path, name: str, log: Path, options: SlurmOptions
) -> str:
    """The batch script of one trial: the first start runs `command` as given, any later one
    (a requeue, a retry) continues from the run's newest checkpoint (`resume=auto`)."""
    lines = [
        "#!/bin/bash",
        f"# {name}: written by hrm-doctor tune --launcher slurm; rerun by hand with sbatch",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --output={log}",
        "#SBATCH --open-mode=append",
        "#SBATCH --requeue",
        "#SBATCH --export=ALL",
        *(f"#SBATCH {d}" for d in options.directives()),
        f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"',
    ]
    if os.environ.get("PYTHONPATH"):
        lines.append(f"export PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}")
    lines += [
        f"cd {shlex.quote(os.getcwd())}",
        f"RUN={shlex.quote(str(run_dir))}",
        'echo "hrm-doctor: job $SLURM_JOB_ID on $(hostname), start ${SLURM_RESTART_COUNT:-0}"',
        f'if compgen -G "$RUN/{CHECKPOINTS_DIR}/step_*" > /dev/null; then',
        f"    exec {shlex.join(with_overrides(command, ['resume=auto']))}",
        "fi",
        f"exec {shlex.join(command)}",
        "",
    ]
    return "\n".join(lines)


class SlurmJob:
    """One trial's job, followed through requeues and retries; the handle `run_trial` drives
    (like `TrainerProcess`: `running()`, `returncode`, `stop()`)."""

    def __init__(self, script: Path, table: JobTable, retries: int) -> None:
        self.script = script
        self.table = table
        self.max_retries = retries
        self.jobs: list[str] = []
        self.retries = 0
        self.requeues = 0  # of the attempts that ended; the current one's are added live
        self.cancelled = False
        self._final: tuple[str, int | None] | None = None
        self._submit()

    @property
    def job(self) -> str:
        return self.jobs[-1]

    def _submit(self) -> None:
        try:
            job = submit(str(self.script))
        except SlurmError as exc:
            raise UserError(f"sbatch {self.script}: {exc}") from None
        self.jobs.append(job)
        self.table.add(job)

    def running(self) -> bool:
        if self._final is not None:
            return False
        st = self.table.state(self.job)
        if not st.ended:
            return True
        self.requeues += st.restarts
        code = exit_code(self.job)
        retry = st.state in RETRYABLE and not (st.state == "FAILED" and code == USER_ERROR_EXIT)
        if retry and not self.cancelled and self.retries < self.max_retries:
            self.retries += 1
            self._submit()
            return True
        self._final = (st.state, code)
        return False

    @property
    def returncode(self) -> int | None:
        if self._final is None:
            return None
        state, code = self._final
        if state == "COMPLETED":
            return 0 if code is None else code
        return code if code else 1  # a job that did not complete never counts as a success

    def stop(self, grace_s: float, *, request_in: Any = None, finding_id: Any = None) -> int | None:
        """Cancel the job (`scancel`: SIGTERM to the trainer, which checkpoints and exits, then
        SIGKILL after Slurm's KillWait) and wait up to `grace_s` for Slurm to say it ended."""
        if self._final is not None or not self.jobs:
            return self.returncode
        self.cancelled = True
        with contextlib.suppress(SlurmError):  # it may have ended meanwhile
            cancel(self.job)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.table.state(self.job, fresh=True).ended:
                break
            time.sleep(0.5)
        st = self.table.state(self.job)
        self.requeues += st.restarts
        self._final = (st.state if st.ended else "CANCELLED", exit_code(self.job))
        return self.returncode

    def exit_reason(self) -> str:
        state, code = self._final or ("RUNNING", None)
        tries = f" after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        return f"ran as Slurm job {self.job}, which ended {state} (exit {code}){tries}"

    def attributes(self) -> dict[str, Any]:
        """What the trial records: its jobs, how each attempt ended, requeues and retries."""
        state = self._final[0] if self._final else self.table.state(self.job).state
        return {
            "slurm_jobs": list(self.jobs),
            "slurm_state": state,
            "requeues": self.requeues,
            "retries": self.retries,
        }


class SlurmLauncher:
    """Submits each trial of a study as a job; `cancel_all` is the study's last word."""

    def __init__(self, options: SlurmOptions, scripts_dir: Path, study: str) -> None:
        self.options = options
        self.scripts_dir = scripts_dir
        self.study = study
        self.table = JobTable()

    def launch(self, command: list[str], log_path: Path, *, run_dir: Path, trial: int) -> SlurmJob:
        name = f"hrm-tune-{self.study}-{trial:04d}"
        self.scripts_dir.mkdir(parents=True, exist_ok=True)
        script = self.scripts_dir / f"trial-{trial:04d}.sh"
        text = job_script(
            per_trial_command(command, self.options.gpus_per_trial),
            run_dir=run_dir, name=name, log=log_path.resolve(), options=self.options,
        )  # fmt: skip
        script.write_text(text)
        script.chmod(0o755)
        return SlurmJob(script, self.table, self.options.retries)

    def cancel_all(self) -> list[str]:
        """Cancel every job still queued or running (the study was interrupted)."""
        alive = self.table.alive()
        for job in alive:
            with contextlib.suppress(SlurmError):
                cancel(job)
        return alive
