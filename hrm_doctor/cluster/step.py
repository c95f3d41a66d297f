"""A training command as a job step of the current Slurm allocation: how `hrm-doctor run
--launcher srun` launches, and after a rollback relaunches, the trainer inside an sbatch script.

`torchrun` gets its rendezvous from the Slurm environment (one agent per node, c10d at the
allocation's first node): `--nnodes=$SLURM_NNODES --rdzv_backend=c10d
--rdzv_endpoint=FIRST_NODE:PORT --rdzv_id=$SLURM_JOB_ID`, each filled in only when the command
does not say it. A step is stopped gently: the control channel's stop request, then
`scancel --signal=TERM` of the step (the trainer checkpoints and exits), then `scancel`, then
SIGKILL of srun.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hrm_doctor.cluster.slurm import CLIENTS, SlurmError, cancel, hostnames, require_clients, slurm
from hrm_doctor.errors import UserError
from hrm_doctor.watch.process import TrainerProcess

_FIRST_PORT = 29500  # torchrun's default; jobs sharing a first node get different ports


def _has(args: list[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in args for n in names)


def _nodes(env: Mapping[str, str]) -> int:
    return int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)


def with_rendezvous(command: list[str], env: Mapping[str, str]) -> list[str]:
    """A torchrun command with its multi-node rendezvous taken from the Slurm environment."""
    if Path(command[0]).name != "torchrun":
        return list(command)
    args, nodes = command[1:], _nodes(env)
    if _has(args, "--standalone"):
        if nodes > 1:
            raise UserError(
                f"torchrun --standalone cannot span the allocation's {nodes} nodes: drop it "
                "(hrm-doctor run --launcher srun fills in the rendezvous from Slurm)"
            )
        return list(command)
    extra = [] if _has(args, "--nnodes") else [f"--nnodes={nodes}"]
    if not _has(args, "--rdzv_endpoint", "--rdzv-endpoint", "--master_addr", "--master-addr"):
        job = env["SLURM_JOB_ID"]
        first = hostnames(env["SLURM_JOB_NODELIST"])[0]
        port = env.get("MASTER_PORT") or str(_FIRST_PORT + int(job) % 10000)
        extra += ["--rdzv_backend=c10d", f"--rdzv_endpoint={first}:{port}", f"--rdzv_id={job}"]
    return [command[0], *extra, *args]


def srun_command(command: list[str], env: Mapping[str, str], name: str) -> list[str]:
    """`srun ... COMMAND`: torchrun once per node of the allocation, anything else once."""
    if Path(command[0]).name == "srun":
        raise UserError("--launcher srun: give the command without srun (the doctor adds it)")
    nodes = _nodes(env) if Path(command[0]).name == "torchrun" else 1
    out = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1",
           "--kill-on-bad-exit=1", "--export=ALL", f"--job-name={name}"]  # fmt: skip
    if env.get("SLURM_CPUS_PER_TASK"):  # srun no longer reads it from the job (Slurm 22.05)
        out.append(f"--cpus-per-task={env['SLURM_CPUS_PER_TASK']}")
    return out + with_rendezvous(command, env)


class SrunStep(TrainerProcess):
    """One launch of the trainer as a job step (srun, in its own process group)."""

    def __init__(self, command: list[str], *, name: str, env: Mapping[str, str]) -> None:
        super().__init__(srun_command(command, env, name))
        self.name = name
        self.job = env["SLURM_JOB_ID"]
        self.step_id: str | None = None

    def find_step(self, wait_s: float) -> str | None:
        """The step's `JOB.STEP` id, once slurmctld lists it (None if it ended first)."""
        deadline = time.monotonic() + wait_s
        while self.step_id is None:
            try:
                out = slurm("squeue", "-h", "-s", "-j", self.job, "-o", "%i|%j")
            except SlurmError:
                out = ""
            for line in out.splitlines():
                step, _, name = line.partition("|")
                if name.strip() == self.name:
                    self.step_id = step.strip()
            if self.step_id is not None or not self.running() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return self.step_id

    def _wait(self, grace_s: float) -> int | None:
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(
        self, grace_s: float, *, request_in: Path | None = None, finding_id: str | None = None
    ) -> int:
        code = self.ask_to_stop(grace_s, request_in, finding_id)
        if code is not None:
            return code
        step = self.find_step(0)
        if step is not None:  # srun itself, on SIGTERM, kills the step at once: signal the step
            for signal in ("TERM", None):
                try:
                    cancel(step, signal=signal)
                except SlurmError:
                    break
                if self._wait(grace_s) is not None:
                    return self.proc.returncode
        return super().stop(grace_s)


def srun_launcher(console: Any, env: Mapping[str, str] | None = None) -> Callable[[list], SrunStep]:
    """The supervisor's `launch`: each (re)launch a new job step of this allocation."""
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        raise UserError(
            "--launcher srun: not inside a Slurm allocation (SLURM_JOB_ID is not set): run "
            "hrm-doctor run in an sbatch script, or under salloc"
        )
    require_clients("--launcher srun", (*CLIENTS, "srun"))
    counter = itertools.count()

    def launch(command: list[str]) -> SrunStep:
        step = SrunStep(command, name=f"hrm-train-{os.getpid()}-{next(counter)}", env=env)
        found = step.find_step(wait_s=10.0)
        console.note(f"job step {found or '(ended before listed)'}: {shlex.join(step.command)}")
        return step

    return launch
