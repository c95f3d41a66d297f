"""Patches end to end between the doctor's PatchManager and the trainer's real ControlChannel."""

import pytest

from hrm_doctor.control import parse_override, read_ack
from hrm_doctor.engine.finding import Finding, Suggestion
from hrm_doctor.watch.patches import PatchManager, read_patches

control = pytest.importorskip("hrm_core.trainer.control")


def finding(
    id="grad-explosion@100",
    overrides=("lr=5e-05",),
    apply="hot",
    first=100,
    last=110,
    severity="critical",
):
    rule = id.split("@")[0]
    return Finding(
        id=id,
        rule=rule,
        pack="core",
        category="explosion",
        severity=severity,
        first_step=first,
        last_step=last,
        rank=None,
        metric="grad/norm",
        message="m",
        suggestion=Suggestion(tuple(overrides), apply, "why", "watch grad/norm", "lower lr more"),
    )


def trainer_acks(run, step, apply=True):
    """What the trainer does at a step boundary: read requests, apply, acknowledge."""
    channel = control.ControlChannel(run)
    for req in channel.poll():
        if req.error:
            channel.acknowledge(req, status="rejected", step=step)
        else:
            channel.acknowledge(
                req, status="applied", step=step, before={"lr": 1e-4}, after=req.values
            )


def states(run):
    return [(r["patch_id"], r["state"]) for r in read_patches(run)]


def test_without_apply_a_patch_is_only_proposed(tmp_path):
    pm = PatchManager(tmp_path, apply=False)
    pm.on_finding(finding())
    assert states(tmp_path) == [("p-grad-explosion@100", "proposed")]
    assert not (tmp_path / "control").exists()


def test_hot_patch_is_requested_applied_and_acknowledged_with_its_step(tmp_path):
    pm = PatchManager(tmp_path, apply=True)
    pm.on_finding(finding())
    trainer_acks(tmp_path, step=101)
    pm.poll()
    recs = read_patches(tmp_path)
    assert [r["state"] for r in recs] == ["proposed", "requested", "applied"]
    assert (
        recs[-1]["step"] == 101
        and recs[-1]["after"] == {"lr": 5e-05}
        and recs[-1]["before"] == {"lr": 1e-4}
    )
    assert read_ack(tmp_path, "p-grad-explosion@100")["status"] == "applied"


def test_the_same_patch_is_never_applied_twice_even_after_a_restart_of_the_doctor(tmp_path):
    pm = PatchManager(tmp_path, apply=True)
    pm.on_finding(finding())
    trainer_acks(tmp_path, step=101)
    pm.poll()
    again = PatchManager(tmp_path, apply=True)  # a restarted daemon
    assert again.on_finding(finding()) == []  # the same finding: nothing
    out = again.on_finding(finding(id="grad-explosion@300", first=300))
    assert out[-1]["state"] == "rejected" and "applied before" in out[-1]["reason"]


def test_one_request_in_flight_and_a_cool_down(tmp_path):
    pm = PatchManager(tmp_path, apply=True, cooldown_s=60)
    pm.on_finding(finding(), now=1000.0)
    pm.on_finding(
        finding(id="q-divergence@120", overrides=("arch.halt_exploration_prob=0.2",)), now=1001.0
    )
    assert states(tmp_path)[-1] == ("p-q-divergence@120", "proposed")  # waits: one in flight
    trainer_acks(tmp_path, step=101)
    pm.poll(now=1002.0)
    assert states(tmp_path)[-1] == ("p-grad-explosion@100", "applied")
    pm.poll(now=1030.0)  # cool-down: not yet
    assert states(tmp_path)[-1] == ("p-grad-explosion@100", "applied")
    pm.poll(now=2000.0)
    assert states(tmp_path)[-1] == ("p-q-divergence@120", "requested")


def test_a_bad_value_is_not_hot_and_the_trainer_rejects_what_is_out_of_bounds(tmp_path):
    with pytest.raises(ValueError, match="out of bounds"):
        parse_override("lr=5")
    pm = PatchManager(tmp_path, apply=True)
    out = pm.on_finding(finding(overrides=("arch.H_cycles=4",)))
    assert out[0]["apply"] == "restart" and out[-1]["state"] == "proposed"
    # a request written by hand with a bad key is rejected by the trainer, with the reason
    from hrm_doctor.control import write_request

    write_request(tmp_path, "manual-1", ["arch.H_cycles=4"])
    trainer_acks(tmp_path, step=5)
    ack = read_ack(tmp_path, "manual-1")
    assert ack["status"] == "rejected" and "not a hot key" in ack["reason"]


def test_a_patch_that_does_not_help_escalates_to_restart(tmp_path):
    restarts = []
    pm = PatchManager(
        tmp_path, apply=True, effect_steps=50, on_restart=lambda f, o: restarts.append(o) or True
    )
    pm.on_finding(finding())
    trainer_acks(tmp_path, step=101)
    pm.poll()
    pm.poll(report=[finding(last=120)], last_step=120)
    assert states(tmp_path)[-1][1] == "applied"
    pm.poll(report=[finding(last=160)], last_step=160)
    assert states(tmp_path)[-1][1] == "escalated" and restarts == [["lr=5e-05"]]


def test_steps_of_a_branch_abandoned_by_a_rollback_do_not_judge_a_patch(tmp_path):
    """Rolled back to step 100 after the finding had run to step 155: the patch applied at 101
    on the new branch is judged by what the finding does from there, not by the old steps."""
    restarts = []
    pm = PatchManager(
        tmp_path, apply=True, effect_steps=50, on_restart=lambda f, o: restarts.append(o) or True
    )
    pm.on_finding(finding(first=56, last=80, severity="warning"))
    trainer_acks(tmp_path, step=101)
    pm.poll()
    pm.poll(report=[finding(first=56, last=155, severity="warning")], last_step=101)
    assert states(tmp_path)[-1][1] == "applied" and restarts == []
    pm.poll(report=[finding(first=56, last=155, severity="warning")], last_step=156)
    assert states(tmp_path)[-1][1] == "effective"


def test_a_patch_that_helps_is_marked_effective(tmp_path):
    pm = PatchManager(tmp_path, apply=True, effect_steps=50)
    pm.on_finding(finding())
    trainer_acks(tmp_path, step=101)
    pm.poll()
    pm.poll(report=[finding(last=110)], last_step=200)
    assert states(tmp_path)[-1][1] == "effective"


def _history(loss_by_step):
    """The monitor's recent history fed with a run's loss and accuracy (accuracy mirrors loss)."""
    import pandas as pd

    from hrm_doctor.watch.recovery import RecentHistory

    steps = sorted(loss_by_step)
    loss = [loss_by_step[s] for s in steps]
    h = RecentHistory()
    h.add(pd.DataFrame({"step": steps, "rank": 0, "train/lm_loss": loss,
                        "train/accuracy": [1.0 - x / 3 for x in loss]}))  # fmt: skip
    return h


def test_a_silenced_alarm_on_a_damaged_run_escalates_to_a_rollback(tmp_path):
    """The patch stops the alarm, but the loss stays far above its level before the onset: the
    run is not healed (issue 14: judged by the run it leaves, not by the alarm)."""
    restarts = []
    pm = PatchManager(
        tmp_path, apply=True, effect_steps=50, on_restart=lambda f, o: restarts.append(o) or True
    )
    pm.on_finding(finding())  # onset at step 100
    before = {s: 1.0 - s / 1000 for s in range(0, 100)}  # learning: ~0.95 before the onset
    trainer_acks(tmp_path, step=101)
    pm.poll(history=_history(before))
    applied = read_patches(tmp_path)[-1]
    assert applied["state"] == "applied"
    assert applied["before_onset"]["train/lm_loss"] == pytest.approx(0.9155, abs=1e-3)  # 70..99
    damaged = _history({**before, **{s: 2.0 for s in range(100, 170)}})  # blown up, stays up
    pm.poll(report=[finding(last=110)], last_step=160, history=damaged)
    last = read_patches(tmp_path)[-1]
    assert last["state"] == "escalated" and "did not recover" in last["reason"]
    assert "train/lm_loss 2 against 0.9155" in last["reason"] and restarts == [["lr=5e-05"]]


def test_a_patch_after_which_the_run_recovers_is_effective(tmp_path):
    pm = PatchManager(tmp_path, apply=True, effect_steps=50)
    pm.on_finding(finding())
    before = {s: 1.0 - s / 1000 for s in range(0, 100)}
    trainer_acks(tmp_path, step=101)
    pm.poll(history=_history(before))
    healed = _history({**before, **{s: 0.9 - (s - 100) / 1000 for s in range(100, 170)}})
    pm.poll(report=[finding(last=110)], last_step=160, history=healed)
    last = read_patches(tmp_path)[-1]
    assert last["state"] == "effective" and last["reason"].startswith("recovered: ")


def test_the_effect_budget_is_a_share_of_the_run(tmp_path):
    import json

    (tmp_path / "meta.json").write_text(json.dumps({"total_steps": 500}))
    assert PatchManager(tmp_path, apply=True).budget_steps() == 50  # 5 %, at least 50
    (tmp_path / "meta.json").write_text(json.dumps({"total_steps": 100_000}))
    assert PatchManager(tmp_path, apply=True).budget_steps() == 1000  # at most 1,000


def test_what_is_acted_on_alone_depends_on_severity(tmp_path):
    restarts = []
    pm = PatchManager(tmp_path, apply=True, on_restart=lambda f, o: restarts.append(f.id) or True)
    info = pm.on_finding(finding(id="lr-far@0", severity="info"))
    assert info[-1]["state"] == "proposed" and "info findings are proposed" in info[-1]["reason"]
    warn = pm.on_finding(finding(id="straggler@5", apply="restart", severity="warning"))
    assert warn[-1]["state"] == "proposed" and "only a critical finding" in warn[-1]["reason"]
    crit = pm.on_finding(finding(id="nonfinite-value@9", apply="restart", overrides=("lr=1e-05",)))
    assert crit[-1]["state"] == "applied" and restarts == ["nonfinite-value@9"]
    pm.poll(now=1e12)  # proposals of info findings are never retried into requests
    assert not (tmp_path / "control" / "requests" / "p-lr-far@0.json").exists()
    # a person's request (the dashboard's Apply button) applies an info finding's patch
    (tmp_path / "other").mkdir()
    manual = PatchManager(tmp_path / "other", apply=True, manual=True)
    out = manual.on_finding(
        finding(id="emb-lr@0", severity="info", overrides=("puzzle_emb_lr=1e-3",))
    )
    assert out[-1]["state"] == "requested"


def test_a_critical_trouble_back_after_its_cure_rolls_back_with_the_confirmed_config_fixes(
    tmp_path,
):
    """The same hot cure cannot be applied twice: when the trouble it cured comes back, the
    run is rolled back instead, and the config warning the trouble confirmed (no warmup with a
    high lr) is part of the restart (the cure's own values win)."""
    import dataclasses

    restarts = []
    pm = PatchManager(
        tmp_path, apply=True, on_restart=lambda f, o: restarts.append((f.id, o)) or True
    )
    config = dataclasses.replace(
        finding(
            id="no-warmup-high-lr@0",
            overrides=("lr_warmup_steps=20", "lr=0.003"),
            apply="restart",
            first=0,
            last=0,
            severity="warning",
        ),  # fmt: skip
        category="config",
    )
    assert pm.on_finding(config)[-1]["state"] == "proposed"  # a warning: not acted on alone
    pm.on_finding(finding(id="grad-norm-rebound@135", overrides=("lr=0.001", "grad_clip_norm=1.0")))
    trainer_acks(tmp_path, step=158)
    pm.poll()
    assert restarts == []
    out = pm.on_finding(
        finding(id="grad-norm-growth@282", overrides=("lr=0.001", "grad_clip_norm=1.0"), first=282)
    )
    assert out[-1]["state"] == "escalated" and "came back" in out[-1]["reason"]
    assert restarts == [
        ("grad-norm-growth@282", ["lr_warmup_steps=20", "lr=0.001", "grad_clip_norm=1.0"])
    ]
