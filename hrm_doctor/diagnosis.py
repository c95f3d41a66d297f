"""Diagnosis as a library: `diagnose(run, rules=None) -> Report`, what `explain`, the dashboard
and `tune` call. A report holds the findings, the run's status, its step count, notes (rules
skipped and why), each rule's outcome, and optionally a comparison with a baseline run (what
got worse, what changed in the config).

>>> from hrm_doctor import diagnose
>>> report = diagnose("runs/exp42")                 # every built-in pack
>>> report.status, [f.id for f in report.findings]
('critical', ['grad-explosion@1200'])
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrm_doctor.engine.engine import RuleEngine
from hrm_doctor.engine.finding import Finding, Note, overall_status
from hrm_doctor.engine.packs import RuleSet, load_rule_set


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule did for this run: fired (with its findings), stayed quiet, or skipped."""

    rule: str
    pack: str
    category: str
    severity: str
    description: str
    findings: tuple[Finding, ...] = ()
    skipped: str | None = None


@dataclass
class Report:
    run: str
    status: str
    steps: int
    findings: list[Finding]
    notes: list[Note]
    outcomes: list[RuleOutcome]
    baseline: dict[str, Any] | None = None
    frame: pd.DataFrame | None = field(default=None, repr=False)  # the run's scalars (html)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run,
            "status": self.status,
            "steps": self.steps,
            "findings": [f.to_json() for f in self.findings],
            "notes": [n.to_json() for n in self.notes],
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out


Rules = RuleSet | Sequence[str] | str | None


def diagnose(
    run: str | Path,
    rules: Rules = None,
    *,
    now: float | None = None,
    label: str | None = None,
    keep_frame: bool = False,
) -> Report:
    """Read a run and evaluate every rule over it in one pass (the same engine as `watch`).

    `rules`: None for every built-in pack, pack names and/or rule-pack files (as `--rules`),
    or a loaded `RuleSet`. `now` also judges the time-based rules (a stalled run) on that
    clock. `keep_frame` keeps the run's scalars on the report (the html report and
    `--baseline` draw from them). Raises `UserError` for a missing run or a bad pack.
    """
    from hrm_doctor.telemetry import RunReader

    rule_set = rules if isinstance(rules, RuleSet) else load_rule_set(_pack_list(rules))
    reader = RunReader(run)
    meta = reader.meta or {}
    ws = meta.get("world_size") or (max(reader.ranks) + 1 if reader.ranks else 1)
    engine = RuleEngine(rule_set, reader.config or {}, meta, world_size=int(ws))
    df, logged = reader.scalars(with_mask=True)
    engine.feed(df, logged)
    engine.finish()
    if now is not None:
        engine.tick(now, last_data_time=reader.last_write_time, status=reader.status)
    return build_report(label or str(run), engine, rule_set, df if keep_frame else None)


def _pack_list(rules: Sequence[str] | str | None) -> list[str] | None:
    if rules is None:
        return None
    return [rules] if isinstance(rules, str) else list(rules)


def build_report(
    label: str, engine: RuleEngine, rule_set: RuleSet, frame: pd.DataFrame | None = None
) -> Report:
    findings = engine.report()
    notes = engine.all_notes()
    skipped = {n.rule: n.message for n in notes}
    outcomes = []
    for lr in rule_set.rules:
        spec = lr.spec
        why = skipped.get(spec.id)
        if why is None and spec.id in engine.inactive:
            why = engine.inactive[spec.id]
        mine = tuple(f for f in findings if f.rule == spec.id)
        outcomes.append(
            RuleOutcome(
                spec.id,
                lr.pack,
                spec.category,
                spec.severity,
                " ".join(spec.description.split()),
                mine,
                None if mine else why,
            )
        )
    return Report(
        label, overall_status(findings), engine.steps, findings, notes, outcomes, frame=frame
    )


# ---- baseline comparison ------------------------------------------------------------------

# metric pattern, summary, better direction ("lower" or "higher")
_KEY_METRICS = (
    ("train/lm_loss", "final", "lower"),
    ("train/exact_accuracy", "final", "higher"),
    ("train/accuracy", "final", "higher"),
    ("eval/*/exact_accuracy", "best", "higher"),
    ("eval/*/accuracy", "best", "higher"),
    ("train/steps", "final", "lower"),
    ("grad/norm", "median", "lower"),
    ("sys/samples_per_s", "median", "higher"),
    ("sys/step_time_s", "median", "lower"),
    ("sys/mem_peak_bytes", "max", "lower"),
)


def _summaries(frame: pd.DataFrame | None) -> dict[str, tuple[float, str, str]]:
    out: dict[str, tuple[float, str, str]] = {}
    if frame is None or len(frame) == 0:
        return out
    cols = [c for c in frame.columns if c not in ("step", "rank", "time")]
    for pattern, how, better in _KEY_METRICS:
        for name in sorted(fnmatch.filter(cols, pattern)):
            v = frame[name].to_numpy(np.float64)
            v = v[np.isfinite(v)]
            if len(v) == 0:
                continue
            if how == "final":
                val = float(np.median(v[-max(1, len(v) // 20) :]))
            elif how == "best":
                val = float(v.max() if better == "higher" else v.min())
            elif how == "max":
                val = float(v.max())
            else:
                val = float(np.median(v))
            out[name] = (val, how, better)
    return out


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _round(x: float) -> float | None:
    return None if not math.isfinite(x) else float(f"{x:.6g}")


def compare(
    report: Report, base: Report, config: Mapping[str, Any], base_config: Mapping[str, Any]
) -> dict[str, Any]:
    """What got worse from `base` to `report`: new findings, metric summaries, config changes."""
    fired = {f.rule for f in report.findings}
    base_fired = {f.rule for f in base.findings}
    mine, theirs = _summaries(report.frame), _summaries(base.frame)
    metrics = []
    for name in sorted(set(mine) & set(theirs)):
        v, how, better = mine[name]
        b = theirs[name][0]
        worse = (v > b) if better == "lower" else (v < b)
        rel = (v - b) / abs(b) if b else math.inf
        metrics.append(
            {
                "metric": name,
                "summary": how,
                "better": better,
                "run": _round(v),
                "baseline": _round(b),
                "change": _round(rel),
                "worse": bool(worse and abs(rel) >= 0.02),
            }
        )
    a, b = _flatten(config), _flatten(base_config)
    cfg = []
    for key in sorted(set(a) | set(b)):
        if key in ("run_dir",):
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            cfg.append(
                {"key": key, "run": a.get(key, "<unset>"), "baseline": b.get(key, "<unset>")}
            )
    return {
        "run": base.run,
        "status": base.status,
        "steps": base.steps,
        "new_findings": sorted(f.id for f in report.findings if f.rule not in base_fired),
        "resolved_rules": sorted(base_fired - fired),
        "metrics": metrics,
        "worse": [m["metric"] for m in metrics if m["worse"]],
        "config_diff": cfg,
    }
