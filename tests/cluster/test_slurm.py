"""On a real Slurm (a single-node cluster the module starts and stops): a study whose trials are
Slurm jobs (the diverging one pruned and its job cancelled, a requeued one and a killed one
both resumed from their checkpoints, the best healthy), and a supervised run healed by a
rollback that relaunches a job step."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from smoke_helpers import smoke_command

from hrm_doctor.rundir import checkpoints, read_lineage

from .conftest import VENV_BIN
from .slurm_cluster import SlurmCluster

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.slow

HRM_DOCTOR = str(VENV_BIN / "hrm-doctor")
STEPS = 64  # the smoke schedule of the tiny data (evals at 16, 32, 48, 64)
# one region of the space diverges: puzzle_emb_lr=1000 (the two rates swapped by mistake) sends
# the gradients to inf some steps in
SPACE = "puzzle_emb_lr: {choice: [1.0e-3, 3.0e-3, 1.0e-2, 1000.0]}\n"


@dataclass
class Study:
    root: Path
    out: str
    code: int
    requeued: int  # the trial whose job the test requeued (`scontrol requeue`)
    killed: int  # the trial whose trainer the test killed (-9: the job FAILED)
    trials: dict[int, object]


def _job_of(slurm: SlurmCluster, trial: int) -> str | None:
    out = slurm.run("squeue", "-h", "-t", "running", "-n", f"hrm-tune-lrs-{trial:04d}", "-o", "%i")
    return out.stdout.split()[0] if out.stdout.split() else None


def _kill_job_processes(slurm: SlurmCluster, job: str) -> bool:
    out = slurm.run("scontrol", "listpids", job, check=False).stdout.splitlines()[1:]
    pids = [int(line.split()[0]) for line in out if line.split() and line.split()[0].isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return bool(pids)


def _disrupt(slurm: SlurmCluster, root: Path, proc: subprocess.Popen, deadline: float) -> dict:
    """While the study runs: requeue the first healthy trial that has a checkpoint, and kill the
    trainer of the next one (a node's OOM killer, a crash)."""
    done: dict[str, int] = {}
    while len(done) < 2 and proc.poll() is None and time.monotonic() < deadline:
        for script in sorted((root / "slurm").glob("trial-*.sh")):
            trial = int(script.stem.split("-")[1])
            if "puzzle_emb_lr=1000" in script.read_text() or trial in done.values():
                continue
            if not checkpoints(root / f"trial-{trial:04d}"):
                continue
            job = _job_of(slurm, trial)
            if job is None:
                continue
            if "requeued" not in done:
                slurm.run("scontrol", "requeue", job)
                done["requeued"] = trial
            elif _kill_job_processes(slurm, job):
                done["killed"] = trial
            break
        time.sleep(0.1)
    return done


@pytest.fixture(scope="module")
def study(slurm: SlurmCluster, tiny_data: Path, tmp_path_factory) -> Study:
    base = tmp_path_factory.mktemp("tune")
    (base / "space.yaml").write_text(SPACE)
    root = base / "study"
    argv = [HRM_DOCTOR, "tune", "--launcher", "slurm", "--max-parallel", "2",
            "--cpus-per-trial", "1", "--trials", "4", "--sampler", "grid", "--space",
            str(base / "space.yaml"), "--metric", "eval/all/accuracy", "--study", "lrs",
            "--root", str(root), "--", *smoke_command(tiny_data), "checkpoint_every=2"]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=base, env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        done = _disrupt(slurm, root, proc, time.monotonic() + 150)
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert set(done) == {"requeued", "killed"}, f"could not disrupt two trials: {done}\n{out}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    loaded = optuna.load_study(study_name="lrs", storage=f"sqlite:///{root / 'study.db'}")
    trials = {t.number: t for t in loaded.trials}
    return Study(root, out, proc.returncode, done["requeued"], done["killed"], trials)


def test_the_diverging_trial_is_pruned_and_its_job_cancelled(study, slurm):
    (bad,) = [t for t in study.trials.values() if t.params["puzzle_emb_lr"] == 1000.0]
    assert bad.state == optuna.trial.TrialState.PRUNED
    f = bad.user_attrs["finding"]  # the finding that pruned it, as DESIGN.md writes it
    assert f["severity"] == "critical" and f["rule"] == "emb-lr-absurd"  # from the config
    assert 0 <= f["first_step"] <= bad.user_attrs["steps_run"] < STEPS
    (job,) = bad.user_attrs["slurm_jobs"]
    assert bad.user_attrs["slurm_state"] == "CANCELLED"
    assert slurm.job_field(job, "JobState") == "CANCELLED"  # Slurm says so too
    assert f"job {job} cancelled" in study.out


def test_the_best_trial_is_healthy(study):
    assert len(study.trials) == 4
    best = max(
        (t for t in study.trials.values() if t.state == optuna.trial.TrialState.COMPLETE),
        key=lambda t: t.value,
    )
    assert best.params["puzzle_emb_lr"] != 1000.0
    assert best.user_attrs["health"] != "critical" and best.user_attrs["steps_run"] == STEPS
    assert best.value > 0.30  # 4x4 Sudoku cells: chance is 0.25
    assert "best trial as a command:" in study.out


def test_the_report_counts_the_jobs(study):
    assert (
        "slurm: 5 jobs for 4 trials; 1 requeued by Slurm, 1 submitted again after a failure, "
        "1 cancelled by pruning"
    ) in study.out


def _log(study: Study, trial: int) -> str:
    return (study.root / "logs" / f"trial-{trial:04d}.log").read_text()


def test_a_requeued_trial_resumes_from_its_checkpoint(study):
    t = study.trials[study.requeued]
    assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
    assert t.user_attrs["requeues"] == 1 and t.user_attrs["retries"] == 0
    assert len(t.user_attrs["slurm_jobs"]) == 1 and t.user_attrs["steps_run"] == STEPS
    log = _log(study, study.requeued)
    assert "start 0" in log and "start 1" in log  # the same job, run twice
    assert "resumed from" in log and "DUE TO JOB REQUEUE" in log


def test_a_killed_trial_is_resubmitted_from_its_checkpoint(study, slurm):
    t = study.trials[study.killed]
    assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
    assert t.user_attrs["retries"] == 1 and t.user_attrs["steps_run"] == STEPS
    first, second = t.user_attrs["slurm_jobs"]
    assert slurm.job_field(first, "JobState") == "FAILED"
    assert slurm.job_field(second, "JobState") == "COMPLETED"
    assert "resumed from" in _log(study, study.killed)


def test_a_supervised_run_is_healed_by_a_rollback_that_relaunches_a_job_step(
    slurm, tiny_data, tmp_path
):
    run = tmp_path / "bad-lr"
    # the launch line of docs/cluster.md: the supervisor in the batch script, torchrun as a job
    # step, its rendezvous from the Slurm environment
    train = ["torchrun", "--nproc_per_node=1", "--no-python", *smoke_command(tiny_data),
             "lr=10", "max_steps=16", f"run_dir={run}"]  # fmt: skip
    script = tmp_path / "job.sh"
    exports = {k: slurm.env[k] for k in ("PATH", "PYTHONPATH", "SLURM_CONF", "WANDB_MODE",
                                         "OMP_NUM_THREADS", "PYTHONUNBUFFERED")}  # fmt: skip
    script.write_text(
        "#!/bin/bash\n#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=2\n"
        + "".join(f"export {k}='{v}'\n" for k, v in exports.items())
        + f"exec {HRM_DOCTOR} run --apply --launcher srun -- {' '.join(train)}\n"
    )
    out = tmp_path / "job.out"
    job = slurm.run("sbatch", "--parsable", "--export=NONE", f"--output={out}", str(script))
    job = job.stdout.strip()
    assert slurm.wait_ended(job, timeout_s=150) == "COMPLETED", out.read_text()[-4000:]
    text = out.read_text()
    (restart,) = [e for e in read_lineage(run) if e["event"] == "restart"]
    assert restart["rule"] == "lr-absurd" and "lr=10" not in " ".join(restart["overrides"])
    steps = [line.split()[3].rstrip(":") for line in text.splitlines()
             if line.startswith("hrm-doctor: job step ")]  # fmt: skip
    assert steps == [f"{job}.0", f"{job}.1"], text  # the rollback relaunched a job step
    assert f"--rdzv_endpoint={slurm.node}:" in text and "--rdzv_backend=c10d" in text
    assert max(s for s, _ in checkpoints(run)) == 16
