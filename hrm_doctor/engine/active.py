"""A rule that applies to one run (`ActiveRule`): its detector per metric and rank (`Series`),
across ranks (`Across`), its guards, suggestion and episodes; why a rule is skipped (`Skip`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.context import RunContext
from hrm_doctor.engine.detectors import REGISTRY, Detector
from hrm_doctor.engine.episodes import EpisodeBook, RunEvent, SeriesState
from hrm_doctor.engine.finding import Suggestion
from hrm_doctor.engine.packs import LoadedRule
from hrm_doctor.engine.rows import Guard
from hrm_doctor.engine.suggest import build_suggestion


class Skip(Exception):
    """A rule that cannot apply to this run (missing config key, condition false)."""

    def __init__(self, reason: str, quiet: bool = False) -> None:
        super().__init__(reason)
        self.quiet = quiet


@dataclass
class Series:
    """One rule applied to one metric (or value expression) of one rank."""

    detector: Detector
    state: SeriesState = field(default_factory=SeriesState)
    last_step: int = -1
    aux_last: dict[str, int] = field(default_factory=dict)


@dataclass
class Across:
    """One across-ranks rule applied to one metric: steps wait until every rank has passed."""

    detector: Detector
    pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # steps, ranks, values
    state: SeriesState = field(default_factory=SeriesState)


class ActiveRule:
    """A rule that applies to this run, with its detectors per metric and rank."""

    def __init__(self, loaded: LoadedRule, ctx: RunContext) -> None:
        spec = loaded.spec
        self.loaded, self.spec, self.ctx = loaded, spec, ctx
        self.cls = REGISTRY[spec.detector.type]
        self.params = self.cls.Params.model_validate(dict(spec.detector.model_extra or {}))
        for cond in spec.when:
            try:
                ok = ex.parse(cond).evaluate(ctx.lookup)
            except ex.MissingName as exc:
                raise Skip(f"{missing_reason(exc.name, ctx)} (needed by: {cond})") from None
            if not ok:
                raise Skip(f"does not apply: {cond} is false", quiet=True)
        # Resolve parameter expressions now: a missing config key skips the rule.
        self.aux = self.make_detector().aux_metrics()
        self.guards: dict[int, Guard] = {}
        self.value = ex.parse(spec.value) if spec.value else None
        for n in self.value.names if self.value else ():
            try:
                ctx.lookup(n)
            except ex.MissingName:
                raise Skip(f"{missing_reason(n, ctx)} (needed by the value)") from None
        self.guard_expr = ex.parse(spec.guard.expr) if spec.guard else None
        self.suggestion: Suggestion = build_suggestion(spec.suggestion, ctx)
        self.series: dict[tuple[str, int], Series] = {}
        self.across: dict[str, Across] = {}
        self.book = EpisodeBook()
        self.patterns = list(spec.metrics)
        self.patterns_key = tuple(spec.metrics)
        self.bound: list[str] = []  # metric labels in binding order

    def make_detector(self) -> Detector:
        return self.cls(self.params, self._resolve)

    def _resolve(self, text: str) -> Any:
        """A parameter's config expression, against this run (the same for each series)."""
        cache = self.__dict__.setdefault("_resolved", {})
        if text not in cache:
            try:
                cache[text] = ex.parse(text).evaluate(self.ctx.lookup)
            except ex.MissingName as exc:
                raise Skip(
                    f"{missing_reason(exc.name, self.ctx)} (needed by the detector)"
                ) from None
        return cache[text]

    def needed_metrics(self) -> set[str]:
        out = set(self.value.metrics) if self.value else set()
        out |= set(self.aux)
        if self.guard_expr is not None and self.spec.guard.missing == "block":
            out |= set(self.guard_expr.metrics)
        return out

    def key_of(self, ev: RunEvent) -> tuple:
        if self.spec.scope == "per_rank":
            return (ev.metric, ev.rank)
        return (ev.metric,)


def missing_reason(name: str, ctx: RunContext) -> str:
    """Why a name does not resolve, in words."""
    if name.startswith(("recipe.", "fit.")):
        return f"no recipe for this run (its config has none and its task is {ctx.task})"
    if name.startswith("meta."):
        return f"the run's metadata has no {name[5:]!r}"
    return f"config key {name!r} is missing"
