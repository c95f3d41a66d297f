"""Alert grouping and W&B alerts (W&B itself is replaced: there is no network here)."""

import json
import sys
import types

from hrm_doctor.engine.finding import Finding, Suggestion
from hrm_doctor.watch.alerts import RateLimit, WandbAlerter, wandb_mode_of


def finding(rule="grad-explosion", severity="critical"):
    return Finding(
        id=f"{rule}@5",
        rule=rule,
        pack="core",
        category="explosion",
        severity=severity,
        first_step=5,
        last_step=5,
        rank=None,
        metric="grad/norm",
        message="grad/norm exploded",
        suggestion=Suggestion(("lr=5e-05",), "hot", "halve it", "grad/norm", "restart"),
    )


def test_rate_limit_groups_per_run_and_rule():
    limit = RateLimit(600)
    assert limit.allow(("a", "r1"), 0) and not limit.allow(("a", "r1"), 599)
    assert limit.allow(("a", "r2"), 1) and limit.allow(("b", "r1"), 1)
    assert limit.allow(("a", "r1"), 600)


def test_wandb_mode_env_wins_over_the_config(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode_of({"wandb": {"mode": "online"}}) == "online"
    assert wandb_mode_of({}) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode_of({"wandb": {"mode": "online"}}) == "offline"


def test_wandb_alerts_only_for_online_runs_once_per_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    alerts, inits = [], []

    class FakeRun:
        def alert(self, **kw):
            alerts.append(kw)

        def finish(self):
            pass

    fake = types.SimpleNamespace(
        init=lambda **kw: inits.append(kw) or FakeRun(),
        Settings=lambda **kw: kw,
        AlertLevel=types.SimpleNamespace(ERROR="ERROR", WARN="WARN", INFO="INFO"),
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    online, offline = tmp_path / "online", tmp_path / "offline"
    for d, mode in ((online, "online"), (offline, "offline")):
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"wandb": {"mode": mode, "project": "hrm"}}))
    w = WandbAlerter(repeat_s=600)
    assert not w("offline", finding(), 0.0, offline)
    assert w("online", finding(), 0.0, online)
    assert not w("online", finding(), 10.0, online)  # grouped: same run and rule
    assert w("online", finding("halting-collapse", "warning"), 20.0, online)
    assert [a["level"] for a in alerts] == ["ERROR", "WARN"]
    assert (
        alerts[0]["title"] == "critical: grad-explosion on online"
        and "lr=5e-05" in alerts[0]["text"]
    )
    assert len(inits) == 1 and inits[0]["project"] == "hrm" and inits[0]["job_type"] == "hrm-doctor"
    w.close()
