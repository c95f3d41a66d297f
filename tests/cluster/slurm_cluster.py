"""A throwaway single-node Slurm cluster for the tests: Debian's slurmctld and slurmd on this
machine, everything (config, state, spool, logs) in a temporary directory, on free ports.

Authentication is auth/none where the installed Slurm has it (Slurm <= 23.02), else MUNGE with
a munged of our own (its key and socket in the same directory). The daemons run in the
foreground as our children, so that stopping the cluster stops exactly them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

# the jobs of a test should never wait long for the scheduler or a requeue
CRED_EXPIRE_S = 5  # a requeued job is held this long (Slurm's default is 120 s)
_PLUGIN_DIRS = ("/usr/lib/*/slurm-wlm", "/usr/lib*/slurm", "/usr/local/lib*/slurm")


def find_program(name: str) -> str | None:
    """On PATH, or in the sbin directories root's PATH has and a CI shell may not."""
    return shutil.which(name) or next(
        (
            p
            for d in ("/usr/sbin", "/usr/local/sbin", "/sbin")
            if os.access(p := f"{d}/{name}", os.X_OK)
        ),
        None,
    )


def missing_programs() -> list[str]:
    names = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")
    return [n for n in names if find_program(n) is None]


def _has_plugin(name: str) -> bool:
    return any(glob.glob(f"{d}/{name}.so") for d in _PLUGIN_DIRS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """`start()` it, use `env` for every Slurm command and job, `stop()` it."""

    def __init__(self, base: Path, *, cpus: int = 2) -> None:
        self.base = base
        self.cpus = cpus
        self.conf = base / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []
        self._log = None
        self.auth = os.environ.get("HRM_TEST_SLURM_AUTH") or (
            "none" if _has_plugin("auth_none") else "munge"
        )
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for var in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_NODELIST", "SLURM_JOB_NODELIST"):
            self.env.pop(var, None)  # a test run inside someone's allocation: not ours

    def _auth_lines(self) -> list[str]:
        if self.auth == "none":
            return ["AuthType=auth/none", "CredType=cred/none",
                    f"AuthInfo=cred_expire={CRED_EXPIRE_S}"]  # fmt: skip
        munge = self.base / "munge"
        munge.mkdir(mode=0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = munge / "munge.socket"
        subprocess.run(
            [find_program("munged") or "munged", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}", "--force"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.munge_pid = munge / "munged.pid"
        return ["AuthType=auth/munge", "CredType=cred/munge",
                f"AuthInfo=socket={sock},cred_expire={CRED_EXPIRE_S}"]  # fmt: skip

    def write_config(self) -> None:
        user = pwd.getpwuid(os.getuid()).pw_name
        for d in ("state", "spool", "log"):
            (self.base / d).mkdir(exist_ok=True)
        b = self.base
        lines = [
            "ClusterName=hrmtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            *self._auth_lines(),
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={b / 'state'}",
            f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'slurmctld.pid'}",
            f"SlurmdPidFile={b / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            # no cgroups in a container sandbox: processes tracked by /proc, tasks not bound
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides",  # trust CPUs/RealMemory below, whatever the host
            "ReturnToService=2",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1",
            "KillWait=10",
            "MinJobAge=600",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))

    def start(self, timeout_s: float = 60.0) -> None:
        self.write_config()
        self._log = log = open(self.base / "log" / "daemons.out", "ab")  # noqa: SIM115 - in stop()
        for daemon in ("slurmctld", "slurmd"):
            args = [find_program(daemon), "-D", "-f", str(self.conf)]
            if daemon == "slurmctld":
                args.append("-i")  # ignore any state: a fresh cluster
            self.procs.append(
                subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            state = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.3)
        self.stop()
        logs = "".join(p.read_text()[-2000:] for p in (self.base / "log").glob("*.log"))
        raise RuntimeError(f"the test Slurm cluster did not come up in {timeout_s:.0f} s:\n{logs}")

    def run(self, *args: str, check: bool = True, timeout_s: float = 30.0):
        return subprocess.run(
            [find_program(args[0]) or args[0], *args[1:]],
            env=self.env, capture_output=True, text=True, check=check, timeout=timeout_s,
        )  # fmt: skip

    def job_field(self, job: str, name: str) -> str | None:
        out = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
        fields = dict(w.split("=", 1) for w in out.split() if "=" in w)
        return fields.get(name)

    def wait_ended(self, job: str, timeout_s: float) -> str:
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                 "OUT_OF_MEMORY", "BOOT_FAIL"}  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.job_field(job, "JobState")
            if state in ended:
                return state
            time.sleep(0.5)
        raise AssertionError(f"job {job} still {state} after {timeout_s:.0f} s")

    def stop(self) -> None:
        """Cancel every job, wait for them to go (bounded), then stop the daemons."""
        if any(p.poll() is None for p in self.procs):
            self.run("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name, check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                out = self.run("squeue", "-h", "-o", "%i", check=False).stdout
                if not out.strip():
                    break
                time.sleep(0.5)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        munge_pid = getattr(self, "munge_pid", None)
        if munge_pid is not None and munge_pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(munge_pid.read_text().split()[0]), 15)
        if self._log is not None:
            self._log.close()
