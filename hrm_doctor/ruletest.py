"""Rule unit tests, like `promtool test rules`: series in, expected findings out.

A test file is YAML::

    config: {lr_warmup_steps: 100}        # merged over a synthetic HRM config (synth.make_config)
    tests:
      - name: a jump of the gradient norm is an explosion
        rules: [grad-explosion]           # rules under test ("all": every rule)
        series:                           # metric (or metric@rank): values, one per step
          grad/norm: "1x300 15x60"
        expect:
          - {rule: grad-explosion, step: 301, severity: critical}
      - name: a healthy run stays quiet
        synthetic: {steps: 6000, seeds: [0, 1]}   # synth.healthy_run (optionally `inject:`)
        rules: all
        min_severity: warning             # only findings at or above this must be expected
        expect: []                        # empty: silence

Series notation (promtool's, plus a geometric form): ``a`` a value; ``NaN``, ``Inf``,
``-Inf``; ``_`` not logged; ``a+bxN`` the N+1 values a, a+b, ..., a+N*b (``a-bxN`` falls,
``axN`` repeats a); ``a*bxN`` the N+1 values a, a*b, ..., a*b^N; ``_xN`` N steps not logged.
`noise: S` multiplies every value by exp(N(0, S)) (seeded), `noise: {metric: S}` one series.
An expectation matches a finding of its rule (or `category`) whose first step is `step`, or
within `within` steps after it, with its `severity` (and `rank`/`metric` when given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hrm_doctor.engine.engine import RuleEngine
from hrm_doctor.engine.finding import Finding
from hrm_doctor.engine.packs import RuleSet, load_rule_set
from hrm_doctor.engine.yamlpos import load_yaml_text, locate
from hrm_doctor.errors import UserError
from hrm_doctor.severity import SEVERITY_ORDER

_TERM = re.compile(
    r"^(?P<a>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|_)"
    r"(?:(?P<op>[-+*])(?P<b>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?x(?P<n>\d+)$"
)
_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_MISSING = None


def expand_series(text: str | int | float) -> list[float | None]:
    """Expand the compact notation into values (None: not logged at that step)."""
    if isinstance(text, (int, float)):
        return [float(text)]
    out: list[float | None] = []
    for term in str(text).split():
        low = term.lower()
        if low in _SPECIAL:
            out.append(_SPECIAL[low])
            continue
        if term == "_":
            out.append(_MISSING)
            continue
        m = _TERM.match(term)
        if m:
            n = int(m.group("n"))
            if m.group("a") == "_":
                if m.group("op"):
                    raise ValueError(f"bad term {term!r}: '_' takes no increment")
                out.extend([_MISSING] * n)
                continue
            a = float(m.group("a"))
            op, b = m.group("op"), float(m.group("b") or 0)
            for i in range(n + 1):
                if op == "*":
                    out.append(a * b**i)
                else:
                    out.append(a + (b if op != "-" else -b) * i)
            continue
        try:
            out.append(float(term))
        except ValueError:
            raise ValueError(
                f"bad term {term!r} (expected a number, NaN, Inf, _, a+bxN, a*bxN)"
            ) from None
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Expect(_Strict):
    rule: str | None = None
    category: str | None = None
    step: int
    within: int = Field(0, ge=0)
    severity: Literal["info", "warning", "critical"] | None = None
    rank: int | None = None
    metric: str | None = None


class Synthetic(_Strict):
    steps: int = Field(4000, ge=100, le=200_000)
    seeds: list[int] = Field(default_factory=lambda: [0])
    world_size: int = Field(1, ge=1, le=64)
    task: Literal["sudoku", "maze", "arc"] = "sudoku"
    arch: Literal["hrm", "trm"] = "hrm"  # trm: synth.as_trm (TRM's metrics and config)
    halt_max_steps: int = 16
    inject: dict[str, Any] | None = None


class Tick(_Strict):
    silent_s: float = Field(ge=0)
    status: str = "running"


class RuleTestCase(_Strict):
    name: str
    rules: list[str] | Literal["all"]
    config: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    world_size: int = Field(1, ge=1, le=64)
    interval: int = Field(1, ge=1)
    series: dict[str, str | float | int] = Field(default_factory=dict)
    synthetic: Synthetic | None = None
    noise: float | dict[str, float] = 0.0  # lognormal sigma, for all series or per series
    seed: int = 0
    min_severity: Literal["info", "warning", "critical"] = "info"
    tick: Tick | None = None  # after the data: the clock says the run has been silent this long
    expect: list[Expect] = Field(default_factory=list)


class RuleTestFile(_Strict):
    rule_files: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    tests: list[RuleTestCase]


@dataclass
class TestResult:
    """The outcome of one test case (one seed for synthetic cases)."""

    file: str
    name: str
    problems: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_frame(case: RuleTestCase) -> tuple[pd.DataFrame, np.ndarray]:
    """The wide frame (step, rank, metrics) and logged mask of a series-based case."""
    per: dict[tuple[str, int], list[float | None]] = {}
    for key, text in case.series.items():
        name, _, rank = key.partition("@")
        values = expand_series(text)
        ranks = [int(rank)] if rank else list(range(case.world_size))
        for r in ranks:
            per[(name, r)] = values
    names = sorted({n for n, _ in per})
    length = max((len(v) for v in per.values()), default=0)
    rng = np.random.default_rng(case.seed)
    rows = []
    for i in range(length):
        for r in range(case.world_size):
            rows.append((i * case.interval, r))
    steps = np.array([s for s, _ in rows], np.int64)
    ranks = np.array([r for _, r in rows], np.int64)
    values = np.full((len(rows), len(names)), np.nan)
    logged = np.zeros((len(rows), len(names)), bool)
    for j, n in enumerate(names):
        sigma = case.noise.get(n, 0.0) if isinstance(case.noise, dict) else case.noise
        for r in range(case.world_size):
            vals = per.get((n, r))
            if vals is None:
                continue
            for i, v in enumerate(vals):
                if v is None:
                    continue
                k = i * case.world_size + r
                if sigma and math.isfinite(v):
                    v = v * math.exp(rng.normal(0.0, sigma))
                values[k, j], logged[k, j] = v, True
    df = pd.DataFrame(values, columns=names)
    df.insert(0, "rank", ranks)
    df.insert(0, "step", steps)
    return df, logged


_T0 = 1_700_000_000.0  # the wall-clock time of a test run's last data


def evaluate(
    rule_set: RuleSet,
    config: dict,
    meta: dict,
    df: pd.DataFrame,
    logged: np.ndarray,
    chunks: Sequence[int] | None = None,
    tick: Tick | None = None,
) -> RuleEngine:
    """Run the engine over a frame, in one pass or split at the given row offsets."""
    engine = RuleEngine(rule_set, config, meta)
    cuts = [0, *sorted(c for c in (chunks or []) if 0 < c < len(df)), len(df)]
    for a, b in zip(cuts, cuts[1:]):
        engine.feed(df.iloc[a:b].reset_index(drop=True), logged[a:b])
    engine.finish()
    if tick is not None:
        engine.tick(_T0 + tick.silent_s, last_data_time=_T0, status=tick.status)
    return engine


def _check(case: RuleTestCase, findings: list[Finding], onset_shift: int = 0) -> list[str]:
    under_test = None if case.rules == "all" else set(case.rules)
    relevant = [
        f
        for f in findings
        if (under_test is None or f.rule in under_test)
        and SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER[case.min_severity]
    ]
    problems = []
    matched: set[str] = set()
    for exp in case.expect:
        lo = exp.step + onset_shift
        hit = None
        for f in relevant:
            if f.id in matched:
                continue
            if exp.rule and f.rule != exp.rule:
                continue
            if exp.category and f.category != exp.category:
                continue
            if not (lo <= f.first_step <= lo + exp.within):
                continue
            if exp.severity and f.severity != exp.severity:
                continue
            if exp.rank is not None and f.rank != exp.rank:
                continue
            if exp.metric and f.metric != exp.metric:
                continue
            hit = f
            break
        if hit is None:
            what = exp.rule or exp.category
            span = f"step {lo}" + (f"..{lo + exp.within}" if exp.within else "")
            got = ", ".join(f"{f.id} ({f.severity})" for f in relevant) or "nothing"
            problems.append(
                f"expected {what} ({exp.severity or 'any severity'}) at {span}; got {got}"
            )
        else:
            matched.add(hit.id)
    for f in relevant:
        if f.id not in matched:
            problems.append(f"unexpected finding {f.id} ({f.severity}): {f.message}")
    return problems


def run_case(
    rule_set: RuleSet,
    base_config: dict,
    case: RuleTestCase,
    file: str,
    chunks: Sequence[int] | None = None,
) -> list[TestResult]:
    """Run one test case (every seed of a synthetic case); one result each."""
    from hrm_doctor import synth

    results = []
    unknown = [] if case.rules == "all" else [r for r in case.rules if rule_set.get(r) is None]
    if unknown:
        return [TestResult(file, case.name, [f"unknown rule(s): {', '.join(unknown)}"])]
    if case.synthetic is not None:
        s = case.synthetic
        for seed in s.seeds:
            run = synth.healthy_run(
                s.steps,
                seed=seed,
                world_size=s.world_size,
                task=s.task,
                halt_max_steps=s.halt_max_steps,
            )
            if s.arch == "trm":
                run = synth.as_trm(run, seed=seed)
            shift = 0
            if s.inject:
                inj = dict(s.inject)
                run = synth.inject(
                    run, inj.pop("pathology"), int(inj.pop("onset")), seed=seed, **inj
                )
            cfg = _merge(_merge(run.config, base_config), case.config)
            meta = {**run.meta, **case.meta}
            engine = evaluate(rule_set, cfg, meta, run.frame, run.logged, chunks, case.tick)
            found = engine.report()
            results.append(
                TestResult(file, f"{case.name} [seed {seed}]", _check(case, found, shift), found)
            )
        return results
    df, logged = build_frame(case)
    cfg = _merge(_merge(synth.make_config(), base_config), case.config)
    meta = {"world_size": case.world_size, **case.meta}
    engine = evaluate(rule_set, cfg, meta, df, logged, chunks, case.tick)
    found = engine.report()
    return [TestResult(file, case.name, _check(case, found), found)]


def load_test_file(text: str, source: str) -> RuleTestFile:
    data = load_yaml_text(text, source)
    try:
        parsed = RuleTestFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        pos = locate(data, tuple(err["loc"]), key=err["type"] == "extra_forbidden")
        loc = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{pos}: {loc}: {err['msg']}") from None
    for i, case in enumerate(parsed.tests):
        for key, text_ in case.series.items():
            try:
                expand_series(text_)
            except ValueError as exc:
                raise UserError(f"{locate(data, ('tests', i, 'series', key))}: {exc}") from None
    return parsed


def run_test_file(
    text: str, source: str, *, base_dir: Path | None = None, chunks: Sequence[int] | None = None
) -> list[TestResult]:
    """Run every case of one test file against the built-in packs plus its `rule_files`."""
    parsed = load_test_file(text, source)
    extra = [str((base_dir or Path(".")) / f) for f in parsed.rule_files]
    rule_set = load_rule_set(extra)
    out: list[TestResult] = []
    for case in parsed.tests:
        out.extend(run_case(rule_set, parsed.config, case, source, chunks))
    return out


def builtin_test_sources() -> list[tuple[str, str]]:
    """(display path, text) of the built-in rule tests."""
    import rules

    return [(f"rules/tests/{f.name}", f.read_text(encoding="utf-8")) for f in rules.test_files()]
