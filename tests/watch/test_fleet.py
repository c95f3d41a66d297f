"""The daemon over many runs (issue 15): catch-up in chunks from a backlog, new data first, a
summary per run, ended runs put to sleep and woken by new data, nothing written twice."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hrm_doctor import RunWriter
from hrm_doctor.engine.packs import load_rule_set
from hrm_doctor.rundir import read_findings, read_summary
from hrm_doctor.watch import monitor as monitor_mod
from hrm_doctor.watch.console import PlainConsole
from hrm_doctor.watch.daemon import Daemon


def write_run(run: Path, steps: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    loss = 2.5 * np.exp(-np.arange(steps) / 800) + 0.3 + rng.normal(0, 0.02, steps)
    with RunWriter(run, config={"lr": 1e-4, "lr_warmup_steps": 10}, rank=0, world_size=1) as w:
        for i in range(steps):
            w.log({"train/lm_loss": float(loss[i]), "grad/norm": float(1 + rng.normal(0, 0.05)),
                   "train/accuracy": float(1 - loss[i] / 3)}, step=i + 1)  # fmt: skip


def append_nan(run: Path, step: int) -> None:
    with RunWriter(run, config={}, rank=0, world_size=1, resume_from_step=step) as w:
        w.log({"train/lm_loss": math.nan}, step=step)


def nonfinite_at(run: Path, step: int) -> bool:
    return any(f["category"] == "nonfinite" and f["first_step"] == step for f in read_findings(run))


def wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def rule_set():
    return load_rule_set(["core"])


def test_new_data_comes_before_the_backlog_of_others(tmp_path, rule_set, monkeypatch):
    monkeypatch.setattr(monitor_mod, "CATCHUP_ROWS", 500)  # many chunks: a long backlog
    for i in range(6):
        write_run(tmp_path / f"run{i}", 6000, seed=i)
    out = io.StringIO()
    daemon = Daemon(tmp_path, rule_set, console=PlainConsole(out), tick_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: len(daemon.monitors) == 6)
        victim = tmp_path / "run5"  # the last in the backlog
        append_nan(victim, 6001)
        wait_for(lambda: nonfinite_at(victim, 6001))
        behind = [name for name, m in daemon.monitors.items() if m.behind]
        assert behind, "the other runs should still be catching up"
        wait_for(lambda: "caught up with 6 run(s)" in out.getvalue(), timeout_s=120)
    finally:
        stop.set()
        thread.join(timeout=30)
    summary = read_summary(tmp_path / "run0")
    assert summary["last_step"] == 6000 and summary["health"] == "healthy"
    assert len(summary["sparklines"]["train/lm_loss"]) <= 120
    assert read_summary(victim)["health"] == "critical"


def test_an_ended_run_sleeps_and_new_data_wakes_it_without_repeating_a_finding(
    tmp_path, rule_set, monkeypatch
):
    monkeypatch.setattr(monitor_mod, "SLEEP_AFTER_S", 0.0)
    run = tmp_path / "run"
    write_run(run, 3000)
    append_nan(run, 3001)  # found during the first catch-up
    m = monitor_mod.RunMonitor(run, rule_set)
    try:
        m.update(drain=True)
        assert nonfinite_at(run, 3001)
        m.status = "finished"  # what its writer's end frame says after the quiet period
        assert m.sleep_if_ended(time.time() + 1) and m.asleep and m.engine is None
        assert m.update() == []  # nothing changed: it stays asleep, reads nothing
        append_nan(run, 3002)  # resumed: it wakes and reads the run again from the start
        found = m.update(drain=True)
        assert not m.asleep and m.last_step == 3002
    finally:
        m.close()
    ids = [f["id"] for f in read_findings(run)]
    assert len(ids) == len(set(ids))  # nothing written twice (findings.jsonl is the cursor)
    assert found == []  # the non-finite episode of step 3001 goes on: no new finding
    nonfinite = [f["id"] for f in read_findings(run) if f["category"] == "nonfinite"]
    assert nonfinite == ["nonfinite-value@3001"]
    assert json.loads((run / "summary.json").read_text())["last_step"] == 3002
