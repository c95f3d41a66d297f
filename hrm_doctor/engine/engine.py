"""`RuleEngine`: one incremental evaluator for every entry point (explain, watch, dashboard).

Feed it new rows (a wide frame: step, rank, one column per metric, plus the logged mask);
it returns the findings that became true. Feeding a run in one pass or in arbitrary chunks
gives the same findings, because every detector output depends only on a bounded window of
samples plus monotone state. Time-based rules fire from `tick(now)` with no new data.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.active import Across, ActiveRule, Series, Skip, missing_reason
from hrm_doctor.engine.context import RunContext
from hrm_doctor.engine.detectors import Detector
from hrm_doctor.engine.detectors.base import json_number
from hrm_doctor.engine.episodes import RunEvent, resolve, scan_runs
from hrm_doctor.engine.finding import Finding, Note, sort_key
from hrm_doctor.engine.packs import RuleSet
from hrm_doctor.engine.rows import Guard, RankRows
from hrm_doctor.engine.suggest import render_template

_EVAL_SECONDS = "eval/*/seconds"


class RuleEngine:
    """Evaluate a rule set over a run's rows, incrementally.

    >>> engine = RuleEngine(rule_set, config=reader.config, meta=reader.meta)
    >>> df, logged = reader.poll(with_mask=True)
    >>> new = engine.feed(df, logged)           # findings that became true in these rows
    >>> new += engine.tick(now=time.time(), last_data_time=reader.last_write_time)

    `known_ids` are findings already written (by a daemon before a restart): they are not
    returned again, but their episodes are re-derived, so nothing is repeated or missed.
    """

    def __init__(
        self,
        rule_set: RuleSet,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        world_size: int | None = None,
        known_ids: Iterable[str] = (),
    ) -> None:
        meta = dict(meta or {})
        ws = int(world_size or meta.get("world_size") or 1)
        self.ctx = RunContext(dict(config or {}), meta, ws)
        self.world_size = ws
        self.known_ids = set(known_ids)
        self.notes: list[Note] = []
        self.rules: list[ActiveRule] = []
        self.inactive: dict[str, str] = {}  # rule id -> why it does not apply
        for loaded in rule_set.rules:
            if not loaded.spec.enabled:
                self.inactive[loaded.spec.id] = "disabled"
                continue
            try:
                self.rules.append(ActiveRule(loaded, self.ctx))
            except Skip as exc:
                self.inactive[loaded.spec.id] = str(exc)
                if not exc.quiet:
                    self.notes.append(Note(loaded.spec.id, loaded.pack, f"skipped: {exc}"))
        self.emitted: list[Finding] = []
        self._by_id: dict[str, Finding] = {}
        self._episode_of: dict[str, tuple[ActiveRule, tuple]] = {}
        self._columns: set[str] = set()
        self._rank_max: dict[int, int] = {}
        self._rank_steps: dict[int, int] = {}
        self._started = False
        self._longest_eval_s = 0.0
        self._stalled_at: int | None = None

    # ---- public API ------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Distinct steps seen (the largest count over ranks)."""
        return max(self._rank_steps.values(), default=0)

    @property
    def last_step(self) -> int | None:
        return max(self._rank_max.values(), default=None)

    def feed(
        self, df: pd.DataFrame, logged: np.ndarray | None = None, now: float | None = None
    ) -> list[Finding]:
        """Evaluate new rows (columns step, rank, metrics...; sorted by step, then rank).

        `logged` (rows x metric columns) tells a logged NaN from a metric absent in a row;
        without it, NaN means "not logged". Rows already seen (same rank and step, same
        metric) are ignored, so overlapping deliveries are harmless.
        """
        out = self._start()
        if df is None or len(df) == 0:
            return out
        metric_cols = [c for c in df.columns if c not in ("step", "rank", "time")]
        col_index = {c: j for j, c in enumerate(metric_cols)}
        if logged is not None and logged.shape != (len(df), len(metric_cols)):
            raise ValueError(f"logged mask shape {logged.shape} != {(len(df), len(metric_cols))}")
        steps = df["step"].to_numpy(np.int64)
        ranks = (
            df["rank"].to_numpy(np.int64) if "rank" in df.columns else np.zeros(len(df), np.int64)
        )
        self._note_columns(metric_cols)
        # The metric columns as one array, once: per-column access to a wide DataFrame costs
        # more than the rules' arithmetic on a chunk of a sweep's run.
        values = df[metric_cols].to_numpy() if metric_cols else np.zeros((len(df), 0))
        # Column access to the mask is per metric: make its columns contiguous once.
        if logged is not None and len(df) > 4096 and not logged.flags.f_contiguous:
            logged = np.asfortranarray(logged)
        lo, hi = (int(ranks.min()), int(ranks.max())) if len(ranks) else (0, 0)
        uniq = np.array([lo]) if lo == hi else np.unique(ranks)
        per_rank: dict[int, RankRows] = {}
        for r in uniq.tolist():
            rows = None if len(uniq) == 1 else np.nonzero(ranks == r)[0]
            rr = RankRows(steps, values, logged, col_index, rows)
            per_rank[r] = rr
            prev = self._rank_max.get(r, -1)
            new_steps = rr.steps[rr.steps > prev]
            if len(new_steps):
                # a rank's rows are sorted by step: distinct steps are the changes, plus one
                distinct = int(np.count_nonzero(np.diff(new_steps))) + 1
                self._rank_steps[r] = self._rank_steps.get(r, 0) + distinct
                self._rank_max[r] = int(new_steps.max())
        self._track_eval_seconds(per_rank)
        for rule in self.rules:
            if rule.cls.kind == "series":
                out += self._feed_series(rule, per_rank)
            elif rule.cls.kind == "ranks":
                out += self._feed_across(rule, per_rank, final=False)
        if (
            self._stalled_at is not None
            and self.last_step is not None
            and self.last_step > self._stalled_at
        ):
            self._stalled_at = None
        return self._sorted(out)

    def tick(
        self, now: float, *, last_data_time: float | None = None, status: str = "running"
    ) -> list[Finding]:
        """Time-based rules (a stalled run), judged on the clock passed in."""
        out = self._start()
        if last_data_time is None or status != "running" or self.last_step is None:
            return out
        silent = float(now) - float(last_data_time)
        for rule in self.rules:
            if rule.cls.kind != "time":
                continue
            det = rule.make_detector()
            limit = det.limit_s(self._longest_eval_s)
            if silent < limit or self._stalled_at == self.last_step:
                continue
            self._stalled_at = self.last_step
            step = self.last_step
            ev = {"silent_s": round(silent, 1), "limit_s": round(limit, 1), "last_step": step}
            out += self._emit(rule, step, step, None, None, ev, key=("stall", step))
        return self._sorted(out)

    def finish(self) -> list[Finding]:
        """End of data (explain): judge the steps that across-rank rules still hold back."""
        out = self._start()
        for rule in self.rules:
            if rule.cls.kind == "ranks":
                out += self._feed_across(rule, {}, final=True)
        return self._sorted(out)

    def report(self) -> list[Finding]:
        """Every finding made so far, in report order, `last_step` extended to its episode end."""
        out = []
        for f in self.emitted:
            rule, key = self._episode_of[f.id]
            ep = rule.book.open.get(key)
            last = ep.last_step if ep is not None and ep.finding_id == f.id else f.last_step
            out.append(f.replace(last_step=max(last, f.last_step)))
        return sorted(out, key=sort_key)

    def missing_notes(self) -> list[Note]:
        """Rules whose metrics this run has not logged (so far): one note each."""
        notes = []
        for rule in self.rules:
            if rule.cls.kind in ("config", "time"):
                continue
            need = rule.needed_metrics() - self._columns
            if rule.patterns and not rule.bound:
                notes.append(
                    Note(
                        rule.spec.id,
                        rule.loaded.pack,
                        f"skipped: the run has no metric {' or '.join(rule.patterns)}",
                    )
                )
            elif need:
                notes.append(
                    Note(
                        rule.spec.id,
                        rule.loaded.pack,
                        f"skipped: the run has no metric {', '.join(sorted(need))}",
                    )
                )
        return notes

    def all_notes(self) -> list[Note]:
        return sorted(self.notes + self.missing_notes(), key=lambda n: (n.pack, n.rule))

    # ---- internals -------------------------------------------------------------------------

    def _start(self) -> list[Finding]:
        if self._started:
            return []
        self._started = True
        out: list[Finding] = []
        for rule in self.rules:
            if rule.cls.kind != "config":
                continue
            try:
                hit = ex.parse(rule.params.check).evaluate(self.ctx.lookup)
            except ex.MissingName as exc:
                self.notes.append(
                    Note(
                        rule.spec.id,
                        rule.loaded.pack,
                        f"skipped: {missing_reason(exc.name, self.ctx)}",
                    )
                )
                continue
            if hit:
                ev = {"check": rule.params.check, "config": self._config_evidence(rule)}
                out += self._emit(rule, 0, 0, None, None, ev, key=("config",))
        return out

    def _config_evidence(self, rule: ActiveRule) -> dict[str, Any]:
        names = set(ex.parse(rule.params.check).names)
        for cond in rule.spec.when:
            names |= set(ex.parse(cond).names)
        out = {}
        for n in sorted(names):
            try:
                v = self.ctx.lookup(n)
            except ex.MissingName:
                continue
            out[n] = json_number(v) if isinstance(v, float) else v
        return out

    def _note_columns(self, cols: list[str]) -> None:
        new = [c for c in cols if c not in self._columns]
        if not new:
            return
        self._columns.update(new)
        for rule in self.rules:
            if rule.cls.kind in ("config", "time"):
                continue
            if rule.value is not None:
                if not rule.bound and rule.value.metrics <= self._columns:
                    rule.bound.append(rule.spec.value.replace("$", ""))
                continue
            for c in sorted(new):
                if _matches(c, rule.patterns_key) and c not in rule.bound:
                    rule.bound.append(c)

    def _track_eval_seconds(self, per_rank: dict[int, RankRows]) -> None:
        for rr in per_rank.values():
            for name in rr.col_index:
                if fnmatch.fnmatchcase(name, _EVAL_SECONDS):
                    _, v = rr.samples(name, -1)
                    if len(v):
                        self._longest_eval_s = max(self._longest_eval_s, float(v.max()))

    def _feed_series(self, rule: ActiveRule, per_rank: dict[int, RankRows]) -> list[Finding]:
        if not rule.bound:
            return []
        events: list[RunEvent] = []
        for r, rr in per_rank.items():
            if rule.spec.scope == "rank0" and r != 0:
                continue
            guard = None
            if rule.guard_expr is not None:
                guard = rule.guards.get(r)
                if guard is None:
                    guard = rule.guards[r] = Guard(
                        rule.guard_expr,
                        rule.spec.guard.window,
                        rule.ctx.lookup,
                        rule.spec.guard.missing == "pass",
                    )
                guard.consume(rr)
            for label in rule.bound:
                key = (label, r)
                ser = rule.series.get(key)
                after = ser.last_step if ser else -1
                if rule.value is not None:
                    s, v = self._value_samples(rule, rr, after)
                else:
                    s, v = rr.samples(label, after, rule.cls.finite_only)
                aux = {}
                for m in rule.aux:
                    aux[m] = rr.samples(m, ser.aux_last.get(m, -1) if ser else -1)
                if len(s) == 0 and not any(len(a[0]) for a in aux.values()):
                    continue
                if ser is None:
                    ser = rule.series[key] = Series(rule.make_detector())
                for m, (a_s, _) in aux.items():
                    if len(a_s):
                        ser.aux_last[m] = int(a_s[-1])
                sig = ser.detector.update(s, v, aux)
                if len(s) == 0:
                    ser.detector.release()
                    continue
                ser.last_step = int(s[-1])
                cond = sig.cond
                if guard is not None:
                    cond = cond & guard.evaluate(sig.steps)
                for e in scan_runs(ser.state, sig.steps, cond, rule.spec.for_, r, label):
                    e.payload = _snapshot(ser.detector, e)
                    events.append(e)
                ser.detector.release()  # evidence taken: keep the window only
        return self._decide(rule, events)

    def _value_samples(
        self, rule: ActiveRule, rr: RankRows, after: int
    ) -> tuple[np.ndarray, np.ndarray]:
        cols = {}
        sel = rr.steps > after
        for m in rule.value.metrics:
            col = rr.column(m)
            if col is None:
                return np.zeros(0, np.int64), np.zeros(0)
            cols[m] = col
            sel = sel & col[1]
        if not sel.any():
            return np.zeros(0, np.int64), np.zeros(0)
        arrays = {m: c[0][sel] for m, c in cols.items()}
        with np.errstate(all="ignore"):
            v = rule.value.evaluate(rule.ctx.lookup, arrays.__getitem__)
        v = np.broadcast_to(np.asarray(v, np.float64), (int(sel.sum()),))
        s = rr.steps[sel]
        if rule.cls.finite_only:
            fin = np.isfinite(v)
            s, v = s[fin], v[fin]
        return s, v

    def _feed_across(
        self, rule: ActiveRule, per_rank: dict[int, RankRows], final: bool
    ) -> list[Finding]:
        if self.world_size < 2:
            return []
        events: list[RunEvent] = []
        ws = self.world_size
        horizon = None if final else min(self._rank_max.get(r, -1) for r in range(ws))
        for label in rule.bound:
            acc = rule.across.get(label)
            if acc is None:
                acc = rule.across[label] = Across(rule.make_detector())
            parts = [acc.pending] if acc.pending is not None else []
            for r, rr in per_rank.items():
                col = rr.column(label)
                if col is None or r >= ws:
                    continue
                v, lg = col
                sel = lg & np.isfinite(v)
                parts.append((rr.steps[sel], np.full(int(sel.sum()), r, np.int64), v[sel]))
            if not parts:
                continue
            st = np.concatenate([p[0] for p in parts])
            rk = np.concatenate([p[1] for p in parts])
            va = np.concatenate([p[2] for p in parts])
            if len(st) == 0:
                continue
            ready = np.ones(len(st), bool) if horizon is None else st <= horizon
            acc.pending = (st[~ready], rk[~ready], va[~ready]) if not ready.all() else None
            if not ready.any():
                continue
            u, inv = np.unique(st[ready], return_inverse=True)
            matrix = np.full((len(u), ws), np.nan)
            matrix[inv, rk[ready]] = va[ready]
            sig = acc.detector.update_ranks(u, matrix)
            for e in scan_runs(acc.state, sig.steps, sig.cond, rule.spec.for_, -1, label):
                e.payload = _snapshot(acc.detector, e)
                events.append(e)
            acc.detector.release()
        return self._decide(rule, events)

    def _decide(self, rule: ActiveRule, events: list[RunEvent]) -> list[Finding]:
        if not events:
            return []
        rp = rule.spec.repeat
        repeat = (rp.count, rp.within, rp.gap) if rp else None
        out = []
        for d in resolve(
            rule.book, events, rule.key_of, rule.spec.id, rule.spec.keep_firing_for, repeat
        ):
            ev = dict(d.event.payload)
            if len(d.onsets) > 1:
                ev["onsets"] = list(d.onsets)
                ev["repeat_count"] = len(d.onsets)
            rank = None if d.event.rank < 0 else d.event.rank
            out += self._emit(
                rule, d.first_step, d.event.confirm_step, rank, d.event.metric, ev, key=d.key
            )
        return out

    def _emit(self, rule, first, last, rank, metric, evidence, key) -> list[Finding]:
        fid = f"{rule.spec.id}@{first}"
        if fid in self._by_id:
            return []
        fields = dict(evidence)
        fields.update(
            metric=metric,
            rank=rank,
            step=last,
            first_step=first,
            last_step=last,
            task=self.ctx.task,
        )
        f = Finding(
            id=fid,
            rule=rule.spec.id,
            pack=rule.loaded.pack,
            category=rule.spec.category,
            severity=rule.spec.severity,
            first_step=int(first),
            last_step=int(last),
            rank=rank,
            metric=metric,
            message=render_template(rule.spec.message, fields, self.ctx),
            evidence=evidence,
            suggestion=rule.suggestion,
        )
        self._by_id[fid] = f
        self._episode_of[fid] = (rule, key)
        self.emitted.append(f)
        if fid in self.known_ids:
            return []
        return [f]

    @staticmethod
    def _sorted(findings: list[Finding]) -> list[Finding]:
        return sorted(findings, key=lambda f: (f.last_step, f.rule, f.metric or "", f.rank or -1))


@functools.lru_cache(maxsize=65536)
def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    """A metric name against a rule's globs (cached: every run of a sweep has the same names)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _snapshot(det: Detector, e: RunEvent) -> dict[str, Any]:
    """Evidence at the confirming sample, taken while the detector's arrays are current."""
    if e.confirm_index is None:
        return {}
    return det.evidence(e.confirm_index)
