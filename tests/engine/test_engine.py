"""The engine: one pass or arbitrary chunks give the same findings; findings are made once;
time-based rules fire with no new data; absent metrics make a rule skip, said once."""

import numpy as np
import pandas as pd
import pytest
from engine_helpers import healthy, sick
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrm_doctor.engine.engine import RuleEngine
from hrm_doctor.engine.finding import Finding


def run_engine(rule_set, run, cuts=(), known=()):
    engine = RuleEngine(rule_set, run.config, run.meta, known_ids=known)
    emitted = []
    bounds = [0, *cuts, len(run.frame)]
    for a, b in zip(bounds, bounds[1:]):
        emitted += engine.feed(run.frame.iloc[a:b].reset_index(drop=True), run.logged[a:b])
    emitted += engine.finish()
    return engine, emitted


def as_json(findings):
    return sorted((f.to_json() for f in findings), key=lambda d: d["id"])


@pytest.fixture(scope="module")
def mixed_run():
    """One run with several pathologies at once (so that many rules fire)."""
    from hrm_doctor import synth

    run = synth.healthy_run(2400, seed=3, world_size=2)
    for i, p in enumerate(
        ("loss_spike", "halting_collapse", "sign_thrash", "straggler", "q_divergence")
    ):
        run = synth.inject(
            run, p, 700 + 300 * i, seed=i, **({"rank": 1} if p == "straggler" else {})
        )
    return run


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_one_pass_and_any_chunking_give_the_same_findings(rule_set, mixed_run, data):
    n = len(mixed_run.frame)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=12))))
    _, whole = run_engine(rule_set, mixed_run)
    engine, chunked = run_engine(rule_set, mixed_run, cuts)
    assert len(whole) >= 6
    assert as_json(chunked) == as_json(whole)
    ref, _ = run_engine(rule_set, mixed_run)
    assert as_json(engine.report()) == as_json(ref.report())


def test_step_by_step_feeding_matches_one_pass(rule_set):
    run = sick("nonfinite", steps=500, onset=400)
    _, whole = run_engine(rule_set, run)
    _, stepwise = run_engine(rule_set, run, cuts=list(range(1, len(run.frame))))
    assert as_json(stepwise) == as_json(whole)
    assert any(f.rule.startswith("nonfinite") and f.first_step == 400 for f in whole)


def test_finding_ids_are_unique_and_follow_the_contract(rule_set, mixed_run):
    engine, emitted = run_engine(rule_set, mixed_run)
    ids = [f.id for f in emitted]
    assert len(ids) == len(set(ids))
    for f in emitted:
        assert f.id == f"{f.rule}@{f.first_step}" and f.first_step <= f.last_step
        assert list(f.to_json()) == [
            "id",
            "rule",
            "pack",
            "category",
            "severity",
            "first_step",
            "last_step",
            "rank",
            "metric",
            "message",
            "evidence",
            "suggestion",
        ]
        assert list(f.to_json()["suggestion"]) == [
            "overrides",
            "apply",
            "rationale",
            "monitor",
            "fallback",
        ]
        assert Finding.from_json(f.to_json()) == f


def test_known_ids_are_not_made_again_but_nothing_is_missed(rule_set, mixed_run):
    _, whole = run_engine(rule_set, mixed_run)
    first_half = {f.id for f in whole[: len(whole) // 2]}
    engine, again = run_engine(rule_set, mixed_run, known=first_half)
    assert {f.id for f in again} == {f.id for f in whole} - first_half
    assert {f.id for f in engine.report()} == {f.id for f in whole}


def test_repeated_rows_are_ignored(rule_set):
    run = sick("loss_spike", steps=1200, onset=800)
    engine = RuleEngine(rule_set, run.config, run.meta)
    first = engine.feed(run.frame, run.logged)
    again = engine.feed(run.frame, run.logged)
    assert first and again == []


def test_a_stalled_run_fires_on_the_clock_alone(rule_set):
    run = healthy(600)
    engine = RuleEngine(rule_set, run.config, run.meta)
    engine.feed(run.frame, run.logged)
    t0 = 1_000_000.0
    assert engine.tick(t0 + 60, last_data_time=t0) == []
    (f,) = engine.tick(t0 + 2000, last_data_time=t0)
    assert f.rule == "run-stalled" and f.first_step == 599 and f.evidence["silent_s"] == 2000
    assert engine.tick(t0 + 4000, last_data_time=t0) == []  # once per silence
    assert engine.tick(t0 + 4000, last_data_time=t0, status="finished") == []


def test_missing_metrics_skip_their_rules_with_one_note(rule_set):
    df = pd.DataFrame({"step": np.arange(50), "rank": 0, "train/lm_loss": np.linspace(2, 1, 50)})
    engine = RuleEngine(rule_set, {"lr": 1e-4}, {})
    engine.feed(df.iloc[:25])
    engine.feed(df.iloc[25:].reset_index(drop=True))
    notes = engine.all_notes()
    rules = [n.rule for n in notes]
    assert len(rules) == len(set(rules))
    assert "grad-explosion" in rules and "loss-spike" not in rules
    assert any("config key" in n.message for n in notes)  # config rules need keys this run lacks
    assert all(n.message.startswith("skipped") for n in notes)


def test_a_logged_nan_is_a_finding_but_an_absent_value_is_not(rule_set):
    steps = np.arange(200)
    df = pd.DataFrame(
        {"step": steps, "rank": 0, "train/lm_loss": np.where(steps == 100, np.nan, 1.0)}
    )
    logged = np.ones((200, 1), bool)
    logged[150, 0] = False
    df.loc[150, "train/lm_loss"] = np.nan
    engine = RuleEngine(rule_set, {}, {})
    found = engine.feed(df, logged)
    assert [f.id for f in found if f.category == "nonfinite"] == ["nonfinite-value@100"]


def test_when_conditions_make_rules_inapplicable(rule_set):
    engine = RuleEngine(rule_set, {"arch": {"halt_max_steps": 1}}, {})
    assert "does not apply" in engine.inactive["halting-collapse-max"]
    assert not any(n.rule == "halting-collapse-max" for n in engine.all_notes())


def test_report_extends_last_step_to_the_end_of_the_episode(rule_set):
    run = sick("sign_thrash", steps=3000, onset=1500)
    engine, emitted = run_engine(rule_set, run)
    made = next(f for f in emitted if f.rule == "emb-sign-thrash")
    final = next(f for f in engine.report() if f.rule == "emb-sign-thrash")
    assert made.last_step < final.last_step == 2999 and made.first_step == final.first_step


def test_suggestions_are_computed_from_the_run_config(rule_set):
    run = sick("explosion", steps=3000, onset=1500)
    _, emitted = run_engine(rule_set, run)
    f = next(f for f in emitted if f.category == "explosion")
    assert f.suggestion.overrides == ("lr=5e-05", "grad_clip_norm=1.0")
    assert f.suggestion.apply in ("hot", "restart") and f.severity == "critical"
