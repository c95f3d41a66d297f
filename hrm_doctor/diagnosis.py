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
import itertools
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
    # finding id -> its metric around the finding (columns step, rank, value): the html charts
    windows: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    # key metric -> (summary value, how, better): what `--baseline` compares
    summaries: dict[str, tuple[float, str, str]] = field(default_factory=dict, repr=False)

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
    windows: bool = False,
    summaries: bool = False,
    chunk_rows: int = 65536,
) -> Report:
    """Read a run and evaluate every rule over it (the same engine as `watch`), streaming: the
    run is read in chunks of about `chunk_rows` rows, so memory does not grow with its length.

    `rules`: None for every built-in pack, pack names and/or rule-pack files (as `--rules`),
    or a loaded `RuleSet`. `now` also judges the time-based rules (a stalled run) on that
    clock. `windows` adds each finding's metric around it (a second pass over the run: the html
    report draws them); `summaries` adds the key metrics' summaries `--baseline` compares.
    Raises `UserError` (a `FileNotFoundError` too) for a missing run, `UserError` for a bad pack.
    """
    from hrm_doctor.telemetry import RunReader

    rule_set = rules if isinstance(rules, RuleSet) else load_rule_set(_pack_list(rules))
    reader = RunReader(run, keep_history=False)
    chunks = reader.iter_scalars(chunk_rows=chunk_rows, with_mask=True)
    first = next(chunks, None)  # after the index pass the reader knows every session and rank
    meta = reader.meta or {}
    ws = meta.get("world_size") or (max(reader.ranks) + 1 if reader.ranks else 1)
    engine = RuleEngine(rule_set, reader.config or {}, meta, world_size=int(ws))
    summary = _SummaryCollector() if summaries else None
    for df, logged in itertools.chain([first] if first is not None else [], chunks):
        engine.feed(df, logged)
        if summary is not None:
            summary.add(df)
    engine.finish()
    if now is not None:
        engine.tick(now, last_data_time=reader.last_write_time, status=reader.status)
    report = build_report(label or str(run), engine, rule_set)
    if summary is not None:
        report.summaries = summary.result()
    if windows:
        report.windows = evidence_windows(run, report.findings, chunk_rows)
    return report


def evidence_windows(
    run: str | Path, findings: Sequence[Finding], chunk_rows: int = 65536
) -> dict[str, pd.DataFrame]:
    """Each finding's metric around it, [first - pad, last + pad] with pad = max(200, half the
    finding's span), of its rank (every rank for a finding about all of them): one streaming
    pass that keeps only those rows."""
    from hrm_doctor.telemetry import RunReader

    wanted = [f for f in findings if f.metric]
    if not wanted:
        return {}
    spans = {}
    for f in wanted:
        pad = max(200, (f.last_step - f.first_step) // 2)
        spans[f.id] = (f.first_step - pad, f.last_step + pad)
    parts: dict[str, list[pd.DataFrame]] = {f.id: [] for f in wanted}
    metrics = sorted({f.metric for f in wanted})
    for df in RunReader(run).iter_scalars(metrics, chunk_rows=chunk_rows):
        lo_step, hi_step = int(df["step"].iloc[0]), int(df["step"].iloc[-1])
        for f in wanted:
            lo, hi = spans[f.id]
            if hi < lo_step or lo > hi_step or f.metric not in df.columns:
                continue
            sel = (df["step"] >= lo) & (df["step"] <= hi) & df[f.metric].notna()
            if f.rank is not None:
                sel &= df["rank"] == f.rank
            part = df.loc[sel, ["step", "rank", f.metric]]
            parts[f.id].append(part.rename(columns={f.metric: "value"}))
    return {
        fid: pd.concat(p, ignore_index=True)
        if p
        else pd.DataFrame(columns=["step", "rank", "value"])
        for fid, p in parts.items()
    }


def _pack_list(rules: Sequence[str] | str | None) -> list[str] | None:
    if rules is None:
        return None
    return [rules] if isinstance(rules, str) else list(rules)


def build_report(label: str, engine: RuleEngine, rule_set: RuleSet) -> Report:
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
    return Report(label, overall_status(findings), engine.steps, findings, notes, outcomes)


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


class _SummaryCollector:
    """The finite values of the key metrics, gathered chunk by chunk (float32: 4 bytes per
    value of about ten metrics; the median of a whole run needs them all)."""

    def __init__(self) -> None:
        self.values: dict[str, list[np.ndarray]] = {}

    def add(self, df: pd.DataFrame) -> None:
        cols = [c for c in df.columns if c not in ("step", "rank", "time")]
        for pattern, _, _ in _KEY_METRICS:
            for name in fnmatch.filter(cols, pattern):
                v = df[name].to_numpy(np.float32)
                self.values.setdefault(name, []).append(v[np.isfinite(v)])

    def result(self) -> dict[str, tuple[float, str, str]]:
        out: dict[str, tuple[float, str, str]] = {}
        for pattern, how, better in _KEY_METRICS:
            for name in sorted(fnmatch.filter(list(self.values), pattern)):
                v = np.concatenate(self.values[name]).astype(np.float64)
                if len(v):
                    out[name] = (_summary(v, how, better), how, better)
        return out


def _summary(v: np.ndarray, how: str, better: str) -> float:
    if how == "final":
        return float(np.median(v[-max(1, len(v) // 20) :]))
    if how == "best":
        return float(v.max() if better == "higher" else v.min())
    if how == "max":
        return float(v.max())
    return float(np.median(v))


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
    mine, theirs = report.summaries, base.summaries
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
