"""The Slurm launchers without a cluster: the job script of a trial, when a job is retried, the
torchrun rendezvous and srun line of a supervised run, and the command-line errors (exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hrm_doctor.cli import main
from hrm_doctor.cluster import batch, step
from hrm_doctor.cluster.batch import SlurmJob, SlurmOptions, job_script, per_trial_command
from hrm_doctor.cluster.slurm import JobState
from hrm_doctor.errors import UserError

TRAIN = ["/venv/bin/hrm-train", "experiment=smoke", "lr=0.001", "run_dir=/shared/t/trial-0003"]


def test_a_trials_job_script_resumes_from_its_checkpoint_after_the_first_start(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/src/hrm doctor")
    options = SlurmOptions(partition="gpu", gpus_per_trial=1, cpus_per_trial=8, time="02:00:00",
                           extra=("--account=abc",))  # fmt: skip
    text = job_script(
        TRAIN, run_dir=Path("/shared/t/trial-0003"), name="hrm-tune-s-0003",
        log=Path("/shared/t/logs/trial-0003.log"), options=options,
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH")]
    assert directives == [
        "--job-name=hrm-tune-s-0003", "--output=/shared/t/logs/trial-0003.log",
        "--open-mode=append", "--requeue", "--export=ALL", "--nodes=1", "--ntasks=1",
        "--partition=gpu", "--time=02:00:00", "--gres=gpu:1", "--cpus-per-task=8",
        "--account=abc",
    ]  # fmt: skip
    assert f'export PATH={Path(sys.executable).parent}:"$PATH"' in lines
    assert "export PYTHONPATH='/src/hrm doctor'" in lines  # this environment, said explicitly
    execs = [line.strip() for line in lines if line.strip().startswith("exec ")]
    assert execs == [
        "exec " + " ".join(TRAIN) + " resume=auto",  # a requeue or a retry: from the checkpoint
        "exec " + " ".join(TRAIN),  # the first start: the command as given
    ]
    assert 'compgen -G "$RUN/checkpoints/step_*"' in text


def test_a_trial_with_several_gpus_runs_under_torchrun():
    assert per_trial_command(TRAIN, 1) == TRAIN
    cmd = per_trial_command(TRAIN, 4)
    assert Path(cmd[0]).name == "torchrun" and cmd[1:4] == [
        "--standalone", "--nproc_per_node=4", "--no-python"
    ]  # fmt: skip
    assert cmd[4:] == TRAIN
    assert per_trial_command(cmd, 4) == cmd


class Table:
    """A job table whose jobs end as the test says (the jobs get ids 1, 2, ...)."""

    def __init__(self, endings: list[tuple[str, int, int]]) -> None:
        self.endings = endings  # per job: (state, exit code, restarts)
        self.jobs: list[str] = []

    def add(self, job: str) -> None:
        self.jobs.append(job)

    def state(self, job: str, *, fresh: bool = False) -> JobState:
        state, _, restarts = self.endings[int(job) - 1]
        return JobState(state, restarts)


def _job(monkeypatch, endings, retries=2) -> SlurmJob:
    table = Table(endings)
    monkeypatch.setattr(batch, "submit", lambda script: str(len(table.jobs) + 1))
    monkeypatch.setattr(batch, "exit_code", lambda job: table.endings[int(job) - 1][1])
    monkeypatch.setattr(batch, "cancel", lambda job, signal=None: None)
    return SlurmJob(Path("trial.sh"), table, retries)


def _run_out(job: SlurmJob) -> None:
    for _ in range(10):
        if not job.running():
            return


@pytest.mark.parametrize(
    ("endings", "retries", "code", "state"),
    [
        ([("COMPLETED", 0, 1)], 0, 0, "COMPLETED"),  # requeued once by Slurm, then done
        ([("PREEMPTED", 0, 0), ("NODE_FAIL", 1, 0), ("COMPLETED", 0, 0)], 2, 0, "COMPLETED"),
        ([("FAILED", 137, 0), ("FAILED", 137, 0), ("FAILED", 137, 0)], 2, 137, "FAILED"),
        ([("FAILED", 2, 0)], 0, 2, "FAILED"),  # a user error fails the same way again
        ([("TIMEOUT", 0, 2), ("COMPLETED", 0, 0)], 1, 0, "COMPLETED"),
        ([("CANCELLED", 0, 0)], 0, 1, "CANCELLED"),  # someone cancelled it: not ours to redo
        ([("OUT_OF_MEMORY", 0, 0)], 0, 1, "OUT_OF_MEMORY"),  # would run out again
    ],
)
def test_which_ended_jobs_are_submitted_again(monkeypatch, endings, retries, code, state):
    job = _job(monkeypatch, endings)
    _run_out(job)
    assert job.returncode == code
    attrs = job.attributes()
    assert attrs["slurm_state"] == state and attrs["retries"] == retries
    assert attrs["slurm_jobs"] == [str(i + 1) for i in range(retries + 1)]
    assert attrs["requeues"] == sum(r for _, _, r in endings[: retries + 1])


def test_a_cancelled_job_is_not_submitted_again(monkeypatch):
    job = _job(monkeypatch, [("CANCELLED", 143, 0)])
    assert job.stop(0.0) == 143 and not job.running()
    assert job.attributes()["slurm_state"] == "CANCELLED"
    assert "ended CANCELLED (exit 143) after 0 retries" in job.exit_reason()


ENV = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2",
       "SLURM_JOB_NUM_NODES": "2", "SLURM_CPUS_PER_TASK": "16"}  # fmt: skip


def test_torchrun_gets_its_rendezvous_from_the_allocation(monkeypatch):
    monkeypatch.setattr(step, "hostnames", lambda nodelist: ["gpu07", "gpu08"])
    torchrun = ["torchrun", "--nproc_per_node=8", "--no-python", "hrm-train", "task=arc1"]
    assert step.srun_command(torchrun, ENV, "hrm-train-1") == [
        "srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
        "--export=ALL", "--job-name=hrm-train-1", "--cpus-per-task=16",
        "torchrun", "--nnodes=2", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu07:33742",
        "--rdzv_id=4242", "--nproc_per_node=8", "--no-python", "hrm-train", "task=arc1",
    ]  # fmt: skip
    given = ["torchrun", "--nnodes=2", "--rdzv-endpoint=head:1234", "-m", "hrm_core.pretrain"]
    assert step.with_rendezvous(given, ENV) == given  # what the command says, it keeps
    # plain hrm-train: once, on the first node
    srun = step.srun_command(["hrm-train", "task=arc1"], ENV, "x")
    assert srun[1:3] == ["--nodes=1", "--ntasks=1"] and srun[-2:] == ["hrm-train", "task=arc1"]
    with pytest.raises(UserError, match="give the command without srun"):
        step.srun_command(["srun", "hrm-train"], ENV, "x")
    with pytest.raises(UserError, match="cannot span the allocation's 2 nodes"):
        step.with_rendezvous(["torchrun", "--standalone", "hrm-train"], ENV)
    one_node = {**ENV, "SLURM_NNODES": "1", "SLURM_JOB_NUM_NODES": "1"}
    alone = ["torchrun", "--standalone", "--nproc_per_node=2", "hrm-train"]
    assert step.with_rendezvous(alone, one_node) == alone


def test_run_with_srun_outside_an_allocation_is_exit_2(monkeypatch, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert main(["run", "--launcher", "srun", "--", "hrm-train", "experiment=smoke"]) == 2
    assert "not inside a Slurm allocation" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--partition", "gpu"], "--partition: only with --launcher slurm"),
        (["--max-parallel", "4"], "--max-parallel: only with --launcher slurm"),
        (["--launcher", "slurm", "--time", "2h"], "--time 2h: not a Slurm time"),
        (["--launcher", "slurm", "--max-parallel", "0"], "--max-parallel 0: must be >= 1"),
        (["--launcher", "slurm", "--retries", "-1"], "--retries -1: must be >= 0"),
    ],
)
def test_tune_slurm_flags_are_checked(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: f"/usr/bin/{name}")
    argv = ["tune", *flags, "--root", str(tmp_path), "--", sys.executable]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_tune_on_slurm_without_the_slurm_commands_is_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = ["tune", "--launcher", "slurm", "--root", str(tmp_path), "--", sys.executable]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--launcher slurm: the Slurm commands sbatch, squeue, scancel, scontrol" in err
