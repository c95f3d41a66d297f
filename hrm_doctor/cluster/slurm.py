"""The Slurm commands the doctor uses (sbatch, squeue, scancel, scontrol, sacct), called directly.

Why not submitit: our jobs are command lines (`hrm-train ...`), not pickled Python functions,
their retries are the trainer's own checkpoints, and submitit learns a job's state from `sacct`,
which needs Slurm's accounting database; `squeue`/`scontrol` work on every cluster.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from hrm_doctor.errors import UserError

CLIENTS = ("sbatch", "squeue", "scancel", "scontrol")
# States a job does not leave (by itself): the job is over, one way or another.
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
     "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
)  # fmt: skip
# Ended for a reason outside the training itself: worth another attempt from the checkpoint.
RETRYABLE = frozenset({"PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "TIMEOUT", "FAILED"})
_TIMEOUT_S = 60.0  # a slurmctld under load answers slowly; never hang forever on it


class SlurmError(Exception):
    """A Slurm command failed (its stderr's first line is the message)."""


def require_clients(flag: str, clients: tuple[str, ...] = CLIENTS) -> None:
    """A UserError naming what is missing when the Slurm client commands are not on PATH."""
    missing = [c for c in clients if shutil.which(c) is None]
    if missing:
        raise UserError(
            f"{flag}: the Slurm commands {', '.join(missing)} are not on PATH "
            "(run on a Slurm login node, or install slurm-client)"
        )


def slurm(*args: str, timeout_s: float = _TIMEOUT_S) -> str:
    """Run one Slurm client command; its stdout, or SlurmError with its first line of stderr."""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        raise SlurmError(f"{args[0]}: not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{args[0]}: no answer within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise SlurmError(f"{' '.join(args[:2])}: {first}")
    return done.stdout


def submit(script: str, *sbatch_args: str) -> str:
    """`sbatch --parsable ARGS SCRIPT`: the new job's id."""
    out = slurm("sbatch", "--parsable", *sbatch_args, script).strip()
    return out.split(";", 1)[0]  # "ID;CLUSTER" on a federation


def cancel(job: str, *, signal: str | None = None) -> None:
    """`scancel [--signal=SIG] JOB` (a job or a step `JOB.STEP`); a job already gone is fine."""
    args = ["scancel", *([f"--signal={signal}"] if signal else []), job]
    try:
        slurm(*args)
    except SlurmError as exc:
        if "Invalid job id" not in str(exc) and "already completing" not in str(exc):
            raise


@dataclass(frozen=True)
class JobState:
    state: str  # RUNNING, PENDING, COMPLETED, ... ("GONE" when Slurm forgot the job)
    restarts: int = 0  # times Slurm requeued it (preemption, `scontrol requeue`, node failure)
    reason: str = ""

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL or self.state == "GONE"


def job_states(jobs: list[str]) -> dict[str, JobState]:
    """One `squeue` for all `jobs` (also recently ended ones); a job squeue no longer knows is
    looked up in `sacct`, else reported GONE."""
    if not jobs:
        return {}
    fields = "JobID:|,State:|,RestartCnt:|,Reason:|"
    try:
        out = slurm("squeue", "-h", "-t", "all", "-j", ",".join(jobs), "-O", fields)
    except SlurmError as exc:
        if "Invalid job id" not in str(exc):
            raise
        out = ""  # every one of them has aged out of slurmctld's memory
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 4 and parts[0].strip() in jobs:
            restarts = int(parts[2]) if parts[2].strip().isdigit() else 0
            states[parts[0].strip()] = JobState(parts[1].strip(), restarts, parts[3].strip())
    for job in jobs:
        if job not in states:
            states[job] = _from_sacct(job)
    return states


def _from_sacct(job: str) -> JobState:
    try:
        out = slurm("sacct", "-X", "-n", "-P", "-j", job, "-o", "State")
    except SlurmError:
        return JobState("GONE")
    lines = out.split()
    return JobState(lines[0].split()[0]) if lines else JobState("GONE")


def exit_code(job: str) -> int | None:
    """The job's exit status (128+N when a signal N ended it), from scontrol, else sacct."""
    try:
        out = slurm("scontrol", "show", "job", "-o", job)
        fields = dict(w.split("=", 1) for w in out.split() if "=" in w)
        text = fields.get("ExitCode")
    except SlurmError:
        text = None
    if text is None:
        try:
            text = slurm("sacct", "-X", "-n", "-P", "-j", job, "-o", "ExitCode").strip()
        except SlurmError:
            return None
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None
    return 128 + int(sig) if sig.isdigit() and int(sig) else int(code)


class JobTable:
    """The states of the jobs one process follows, refreshed by one `squeue` at most every
    `refresh_s` whatever the number of jobs and threads asking (a slurmctld is shared)."""

    def __init__(self, refresh_s: float = 1.0) -> None:
        self.refresh_s = refresh_s
        self._jobs: dict[str, JobState] = {}
        self._lock = threading.Lock()
        self._at = 0.0

    def add(self, job: str) -> None:
        with self._lock:
            self._jobs[job] = JobState("PENDING")
            self._at = 0.0

    def state(self, job: str, *, fresh: bool = False) -> JobState:
        with self._lock:
            if fresh or time.monotonic() - self._at >= self.refresh_s:
                live = [j for j, s in self._jobs.items() if not s.ended]
                # a busy slurmctld that does not answer: the jobs are as last seen, ask again
                with contextlib.suppress(SlurmError):
                    self._jobs.update(job_states(live))
                self._at = time.monotonic()
            return self._jobs[job]

    def alive(self) -> list[str]:
        with self._lock:
            return [j for j, s in self._jobs.items() if not s.ended]


def hostnames(nodelist: str) -> list[str]:
    """`scontrol show hostnames`: a Slurm node list (`gpu[01-03]`) as host names."""
    return slurm("scontrol", "show", "hostnames", nodelist).split()
