"""The real entry point (`hrm-train ARGV`, in-process and as a command) and what it logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_core.trainer import checkpoint as ckpt
from hrm_doctor import RunReader

from .conftest import HRM_TRAIN, TORCHRUN, command_env, run_command
from .test_control import write_request

LOSSES = ["train/lm_loss", "train/q_halt_loss", "train/q_continue_loss"]


def scalars(run_dir: Path):
    return RunReader(run_dir).scalars()


def wait_for(predicate, timeout_s: float = 60.0, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(poll_s)


# ---- the smoke run: finishes, writes the contract's metrics, learns --------------------------


@pytest.mark.slow
def test_smoke_trains_learns_and_writes_the_metrics(tmp_path):
    run_dir = tmp_path / "run"
    args = [HRM_TRAIN, "experiment=smoke", f"run_dir={run_dir}", "seed=1"]
    result = run_command([*args, f"data_path={tmp_path / 'data'}"], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eval at step" in result.stdout and "done at step 500" in result.stdout

    reader = RunReader(run_dir)
    df = reader.scalars()
    assert list(df["step"]) == list(range(1, 501)) and set(df["rank"]) == {0}
    contract = [
        *LOSSES,
        "train/accuracy",
        "train/exact_accuracy",
        "train/q_halt_accuracy",
        "train/steps",
        "train/count",
        "train/lr",
        "train/puzzle_emb_lr",
        "sys/step_time_s",
        "sys/samples_per_s",
        "sys/data_wait_s",
        "sys/comm_s",
        "grad/norm",
        "nonfinite/count",
        "eval/all/accuracy",
        "eval/all/exact_accuracy",
        "eval/all/steps",
        "eval/all/seconds",
    ]
    assert not set(contract) - set(df.columns)
    assert reader.meta["num_params"] > 0 and reader.meta["program"] == "hrm-train"
    assert reader.config["seed"] == 1 and reader.config["arch"]["hidden_size"] == 64

    acc = df["train/accuracy"].dropna()
    first, last = acc.iloc[:3].mean(), acc.iloc[-30:].mean()
    assert last > first + 0.3, (first, last)  # it learns: token accuracy clearly rises
    evals = df.dropna(subset=["eval/all/accuracy"])
    assert list(evals["step"]) == [125, 250, 375, 500]
    assert evals["eval/all/accuracy"].iloc[-1] > evals["eval/all/accuracy"].iloc[0]
    assert (evals["eval/all/steps"] == 4).all()  # evaluation always runs halt_max_steps
    assert df["nonfinite/count"].max() == 0 and df["train/lr"].max() == pytest.approx(1e-3)
    assert (df["sys/step_time_s"] > 0).all() and (df["sys/comm_s"] == 0).all()
    assert (run_dir / ".hydra" / "config.yaml").is_file()  # Hydra's outputs live in the run
    # checkpoint_every 50 and at each evaluation, keep_last 10: a rollback of hrm-doctor run
    # lands just before trouble
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)] == [
        125, 150, 200, 250, 300, 350, 375, 400, 450, 500]  # fmt: skip


# ---- exact resume ------------------------------------------------------------------------------


def test_an_interrupted_and_resumed_run_logs_the_same_losses(tmp_path, train, tiny_args):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    # 20 steps cross two evaluations (passes of 8 steps); the interruption is mid-pass.
    assert train(tiny_args(whole, "max_steps=20", "checkpoint_every=6")) == 0
    assert train(tiny_args(parts, "max_steps=11", "checkpoint_every=6")) == 0
    assert [s for s, _ in ckpt.list_checkpoints(parts)] == [6, 8, 11]  # keep_last: 3
    assert train(tiny_args(parts, "max_steps=20", "checkpoint_every=6")) == 0

    a, b = scalars(whole), scalars(parts)
    assert list(a["step"]) == list(b["step"]) == list(range(1, 21))
    for name in [*LOSSES, "train/accuracy", "grad/norm", "train/lr"]:
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)
    for name in ("eval/all/accuracy", "eval/all/exact_accuracy"):
        np.testing.assert_array_equal(a[name].dropna(), b[name].dropna(), err_msg=name)
    assert list(a.dropna(subset=["eval/all/accuracy"])["step"]) == [8, 16]
    lineage = RunReader(parts).lineage
    assert len(lineage) == 2 and lineage[-1].get("resume_from_step") == 12


@pytest.mark.slow
def test_a_killed_run_resumes_exactly_from_its_last_checkpoint(tmp_path, train, tiny_args):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train(tiny_args(whole, "max_steps=16")) == 0
    proc = subprocess.Popen(
        [HRM_TRAIN, *tiny_args(killed, "checkpoint_every=3", "max_steps=60")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=command_env(),
    )
    try:
        wait_for(lambda: any(s >= 6 for s, _ in ckpt.list_checkpoints(killed)), timeout_s=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed_from = ckpt.list_checkpoints(killed)[-1][0]
    assert train(tiny_args(killed, "max_steps=16")) == 0
    a, b = scalars(whole), scalars(killed)
    assert list(b["step"]) == list(range(1, 17))
    for name in LOSSES:
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)
    assert RunReader(killed).lineage[-1].get("resume_from_step") == resumed_from + 1


# ---- the control channel, live -------------------------------------------------------------


def test_a_hot_lr_patch_takes_effect_and_is_acknowledged(tmp_path, train, tiny_args):
    run_dir = tmp_path / "run"
    acks_dir = run_dir / "control" / "acks"
    # A long schedule (constant lr), stopped by SIGTERM once the doctor has seen its patch work.
    args = tiny_args(run_dir, "epochs=160", "lr_warmup_steps=0", "probe.enabled=false")

    def doctor() -> None:
        wait_for(lambda: (run_dir / "telemetry").is_dir() and _last_step(run_dir) >= 5)
        write_request(run_dir, "good", ["lr=5e-05", "grad_clip_norm=1.0"], finding_id="f@5")
        write_request(run_dir, "unknown", ["arch.hidden_size=32"])
        write_request(run_dir, "bounds", ["lr=3"])
        (run_dir / "control" / "requests" / "garbage.json").write_text("{nope")
        wait_for(lambda: len(list(acks_dir.glob("*.json"))) == 4)  # garbage: after its 2 s grace
        applied = json.loads((acks_dir / "good.json").read_text())["step"]
        wait_for(lambda: _last_step(run_dir) >= applied + 3)
        os.kill(os.getpid(), signal.SIGTERM)  # a preemption: the trainer stops cleanly

    thread = threading.Thread(target=doctor)
    thread.start()
    assert train(args) == 0
    thread.join()

    acks = {p.stem: json.loads(p.read_text()) for p in acks_dir.iterdir()}
    good = acks["good"]
    assert good["status"] == "applied" and good["reason"] is None and good["finding_id"] == "f@5"
    assert good["before"] == {"lr": 1e-3, "grad_clip_norm": None}
    assert good["after"] == {"lr": 5e-05, "grad_clip_norm": 1.0}
    df = scalars(run_dir).set_index("step")
    patched, stopped = good["step"], int(df.index.max())
    assert patched >= 6 and stopped >= patched + 3
    assert df.loc[patched - 1, "train/lr"] == pytest.approx(1e-3)
    assert (df.loc[patched:, "train/lr"] == np.float32(5e-05)).all()  # the new base, from then
    assert acks["unknown"]["status"] == "rejected" and "not a hot key" in acks["unknown"]["reason"]
    assert acks["bounds"]["status"] == "rejected" and "out of bounds" in acks["bounds"]["reason"]
    assert acks["bounds"]["after"] == {} and acks["bounds"]["before"] == {}
    assert acks["garbage"]["status"] == "rejected" and "unparseable" in acks["garbage"]["reason"]
    assert list(df.index) == list(range(1, stopped + 1))
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)][-1] == stopped  # saved on SIGTERM

    # A resume keeps the patched base lr (restored from the checkpoint); acks are not redone.
    assert (
        train(tiny_args(run_dir, "epochs=160", "lr_warmup_steps=0", f"max_steps={stopped + 2}"))
        == 0
    )
    df = scalars(run_dir).set_index("step")
    assert (df.loc[stopped + 1 :, "train/lr"] == np.float32(5e-05)).all()
    assert json.loads((acks_dir / "good.json").read_text()) == good
    # ... unless the restart overrides the key: the command line wins.
    end = stopped + 4
    extra = ("epochs=160", "lr_warmup_steps=0", f"max_steps={end}", "lr=2e-4")
    assert train(tiny_args(run_dir, *extra)) == 0
    assert (
        scalars(run_dir).set_index("step").loc[stopped + 3 :, "train/lr"] == np.float32(2e-4)
    ).all()


def test_the_doctor_can_stop_a_hopeless_trial(tmp_path, train, tiny_args):
    from hrm_doctor.control import write_stop_request

    run_dir = tmp_path / "run"
    args = tiny_args(run_dir, "epochs=160", "probe.enabled=false")

    def doctor() -> None:
        wait_for(lambda: (run_dir / "telemetry").is_dir() and _last_step(run_dir) >= 3)
        write_stop_request(run_dir, "stop-1", finding_id="grad-explosion@3")

    thread = threading.Thread(target=doctor)
    thread.start()
    assert train(args) == 0  # a clean stop frees the machine (the next sweep job runs)
    thread.join()
    ack = json.loads((run_dir / "control" / "acks" / "stop-1.json").read_text())
    assert ack["status"] == "applied" and ack["finding_id"] == "grad-explosion@3"
    stopped = int(scalars(run_dir)["step"].max())
    assert stopped == ack["step"] and stopped < 100  # long before the schedule's end
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)][-1] == stopped


def _last_step(run_dir: Path) -> int:
    try:
        df = RunReader(run_dir).scalars(["train/lm_loss"])
    except Exception:
        return 0
    return int(df["step"].max()) if len(df) else 0


# ---- blow-ups are logged, never fatal -------------------------------------------------------


def test_lr_10_without_warmup_blows_up_visibly_and_the_trainer_carries_on(
    tmp_path, train, tiny_args
):
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "lr=10", "lr_warmup_steps=0", "max_steps=10")) == 0
    df = scalars(run_dir)
    assert list(df["step"]) == list(range(1, 11))
    loss = df["train/lm_loss"].to_numpy()
    assert (~np.isfinite(loss)).any() or loss[1:].max() > 3 * loss[0]  # the loss explodes


def test_non_finite_steps_are_skipped_counted_and_logged(tmp_path, train, tiny_args):
    run_dir = tmp_path / "run"
    args = tiny_args(run_dir, "lr=1e30", "lr_warmup_steps=0", "max_steps=6")
    assert train(args) == 0
    df = scalars(run_dir)
    assert list(df["step"]) == list(range(1, 7))
    bad = df[df["nonfinite/count"] > 0]
    assert len(bad) >= 3 and (bad["nonfinite/skipped"] == 1).all()
    assert bad["train/lm_loss"].isna().all()  # logged as NaN, for the doctor to see
    weights = torch.load(
        ckpt.list_checkpoints(run_dir)[-1][1] / "model.pt", map_location="cpu", weights_only=True
    )
    assert all(torch.isfinite(t).all() for t in weights.values())  # never poisoned


# ---- errors a user can cause: one line, exit 2 ----------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lrr=1", "config key 'lrr': unknown key (did you mean 'lr'?)"),
        ("lr=abc", "config key 'lr': input should be a valid number"),
        ("epochs=10", "epochs (10) must be a multiple of eval_interval (4)"),
        ("skip_batches=-1", "config key 'skip_batches'"),
        ("resume=/nonexistent/ckpt", "config key 'resume': /nonexistent/ckpt: no such checkpoint"),
    ],
)
def test_config_errors_are_one_line_and_exit_2(tmp_path, train, capsys, override, message):
    code = train(["experiment=smoke", f"run_dir={tmp_path}", f"data_path={tmp_path}/d", override])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("hrm-train: error: ") and "\n" not in err
    assert message in err


def test_the_console_script_exits_2_with_one_line(tmp_path):
    result = run_command([HRM_TRAIN, "experiment=smoke", "lr=-1", f"run_dir={tmp_path}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hrm-train: error: config key 'lr': input should be greater than 0 (got -1)"
    ]


def test_a_checkpoint_that_does_not_fit_the_data_is_one_line(tmp_path, train, tiny_args, capsys):
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "max_steps=2")) == 0
    capsys.readouterr()
    assert train(tiny_args(run_dir, "max_steps=4", "arch.hidden_size=32")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "checkpoint does not fit" in err
    assert "arch.puzzle_emb_ndim) is 64 in the checkpoint but 32" in err


# ---- preflight, multirun, rollback skip --------------------------------------------------------


def test_preflight_checks_and_exits_0_or_2(tmp_path, train, tiny_args, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "preflight=true")) == 0
    out = capsys.readouterr().out
    assert "preflight: ok" in out and "memory/device" in out and "step time" in out
    assert not (run_dir / "telemetry").exists()  # checks only
    monkeypatch.setenv("RANK", "0")  # half a torchrun environment
    assert train(tiny_args(run_dir, "preflight=true")) == 2
    out = capsys.readouterr().out
    assert "hrm-train: preflight: torchrun environment: RANK set but" in out


def test_multirun_writes_one_run_directory_per_job(tmp_path, train, tiny_args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "sweep"
    assert train(["-m", *tiny_args(root, "max_steps=2"), "lr=1e-3,3e-3"]) == 0
    assert [RunReader(root / job).config["lr"] for job in ("0", "1")] == [1e-3, 3e-3]
    assert all((root / job / ".hydra").is_dir() for job in ("0", "1"))
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_skip_batches_moves_the_data_on_once_per_branch(tmp_path, train, tiny_args):
    plain, skipped = tmp_path / "plain", tmp_path / "skipped"
    assert train(tiny_args(plain, "max_steps=6")) == 0
    assert train(tiny_args(skipped, "max_steps=2")) == 0
    assert train(tiny_args(skipped, "max_steps=4", "skip_batches=2")) == 0
    assert train(tiny_args(skipped, "max_steps=6", "skip_batches=2")) == 0  # not skipped again
    state = json.loads((ckpt.list_checkpoints(skipped)[-1][1] / "state.json").read_text())
    assert state["skips"] == [{"from_step": 2, "batches": 2}]
    # 6 steps + 2 skipped batches = the whole first pass (8 batches): the next one starts
    assert (state["loader"]["pass_index"], state["loader"]["batch_in_pass"]) == (1, 0)
    a, b = scalars(plain), scalars(skipped)
    # Until step 4 every slot still works on the examples loaded at step 1 (the ACT carry);
    # from step 5 the slots that halted take other examples than without the skip.
    np.testing.assert_array_equal(a["train/lm_loss"][:4], b["train/lm_loss"][:4])
    assert (a["train/lm_loss"].to_numpy()[4:] != b["train/lm_loss"].to_numpy()[4:]).all()


# ---- torchrun: two ranks, one run directory -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["arch=hrm_v1", "arch=trm"])
def test_torchrun_two_ranks_write_one_run_directory(tmp_path, train, tiny_args, arch):
    single, double = tmp_path / "single", tmp_path / "double"
    assert train(tiny_args(single, arch, "max_steps=3")) == 0
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "--no-python", "hrm-train"]
    result = run_command([*cmd, *tiny_args(double, arch, "max_steps=3")], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    reader = RunReader(double)
    df = reader.scalars()
    assert reader.ranks == [0, 1] and reader.meta["world_size"] == 2
    assert sorted(zip(df["step"], df["rank"])) == [(s, r) for s in (1, 2, 3) for r in (0, 1)]
    assert (df["sys/comm_s"] > 0).all()
    # Loss pre-scaled by 1/global batch and gradients summed: the ranks' mean at step 1 is the
    # single-process loss (same weights, the same 64 examples split 32 + 32).
    one = scalars(single).set_index("step").loc[1, "train/lm_loss"]
    two = df[df["step"] == 1]["train/lm_loss"].mean()
    assert two == pytest.approx(one, rel=1e-5)
    assert len(list((double / "telemetry").iterdir())) == 2
    assert [s for s, _ in ckpt.list_checkpoints(double)] == [3]
    state = json.loads((double / "checkpoints" / "step_00000003" / "state.json").read_text())
    assert state["world_size"] == 2


# ---- one host sync per step -------------------------------------------------------------------


def test_one_host_sync_per_step_and_none_hidden_in_the_trainer(
    tmp_path, train, tiny_args, monkeypatch
):
    import sys

    import hrm_core.trainer.stepsync as stepsync

    transfers: list[int] = []
    to_host = stepsync.metrics_to_host

    def counting(metrics):
        transfers.append(len(metrics))
        return to_host(metrics)

    monkeypatch.setattr(stepsync, "metrics_to_host", counting)
    hidden: list[str] = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "hrm_core/pretrain.py" in caller or (
                "hrm_core/trainer/" in caller and not caller.endswith(("evaluation.py", "host.py"))
            ):
                hidden.append(f"{_name} in {caller}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    assert train(tiny_args(tmp_path / "run", "max_steps=6")) == 0
    monkeypatch.undo()
    assert hidden == []  # the trainer's only sync is the batched transfer below
    assert len(transfers) == 6 + 1  # one per step, plus the flush before the checkpoint


def test_gradient_accumulation_matches_one_big_batch(tmp_path, train, tiny_args):
    one, two = tmp_path / "one", tmp_path / "two"
    assert train(tiny_args(one, "max_steps=4", "probe.enabled=false")) == 0
    assert train(tiny_args(two, "max_steps=4", "grad_accum_steps=2", "probe.enabled=false")) == 0
    a, b = scalars(one), scalars(two)
    # Two micro-batches of 32 (each with its own ACT carry) = one batch of 64, up to float order.
    np.testing.assert_allclose(a["train/lm_loss"], b["train/lm_loss"], rtol=1e-4)
    np.testing.assert_allclose(a["grad/norm"], b["grad/norm"], rtol=1e-3)


# ---- one producer per metric ------------------------------------------------------------------


def test_grad_norm_and_nonfinite_count_have_one_producer_the_trainer(tmp_path, train, tiny_args):
    """The trainer computes the pre-clip norm and the non-finite count anyway (to clip, to skip
    a step): the probe of hrm-train has no quantity of those names, and what is logged is the
    trainer's pre-clip norm (clipping at 1e-3 does not shrink it)."""
    from hrm_core.config import load_config
    from hrm_core.trainer.build import TRAINER_METRICS, build_network, make_probe, open_data
    from hrm_core.trainer.distributed import DistInfo

    args = tiny_args(tmp_path / "run", "max_steps=4", "grad_clip_norm=0.001", "probe.tier=full")
    cfg = load_config(args)
    info = DistInfo()  # one process
    probe = make_probe(cfg, build_network(cfg, open_data(cfg, info), info, torch.device("cpu")))
    names = probe.names()
    assert not set(TRAINER_METRICS) & set(names)
    assert "grad/norm/H" in names and "grad/norm/H.0" in names  # the groups stay the probe's
    assert train(args) == 0
    df = scalars(tmp_path / "run")
    assert (df["grad/norm"] > 0.01).all()  # before clipping
    assert (df["nonfinite/count"] == 0).all()


# ---- resume=true / false ----------------------------------------------------------------------


def test_resume_true_needs_a_checkpoint_and_false_starts_fresh(tmp_path, train, tiny_args, capsys):
    run_dir = tmp_path / "run"
    assert train(tiny_args(run_dir, "resume=true", "max_steps=3")) == 2
    err = capsys.readouterr().err
    assert f"config key 'resume': true, but {run_dir} has no complete checkpoint" in err
    assert train(tiny_args(run_dir, "max_steps=3")) == 0  # paused at 3: a checkpoint
    assert train(tiny_args(run_dir, "resume=true", "max_steps=5")) == 0
    assert "resumed from" in capsys.readouterr().out
    assert list(scalars(run_dir)["step"]) == [1, 2, 3, 4, 5]
    assert train(tiny_args(run_dir, "resume=false", "max_steps=2")) == 0  # = never: from 0
    assert "resumed from" not in capsys.readouterr().out
    assert list(scalars(run_dir)["step"]) == [1, 2]  # the new timeline supersedes the old
    assert train(tiny_args(run_dir, "resume=nowhere/at/all")) == 2
    err = capsys.readouterr().err
    assert "accepted: auto, true, false (= never), never, or a checkpoint or run directory" in err
