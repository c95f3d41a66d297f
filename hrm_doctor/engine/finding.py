"""`Finding`: what is wrong, since which step, the evidence, and what to do (DESIGN.md contract)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hrm_doctor.severity import severity_rank, worst


@dataclass(frozen=True)
class Suggestion:
    """A config patch (Hydra overrides) with how to apply and judge it."""

    overrides: tuple[str, ...] = ()
    apply: str = "hot"  # hot | restart
    rationale: str = ""
    monitor: str = ""
    fallback: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "overrides": list(self.overrides),
            "apply": self.apply,
            "rationale": self.rationale,
            "monitor": self.monitor,
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class Finding:
    """One diagnosis of one run; `id` is ``RULE@FIRST_STEP`` and is written once.

    `last_step` is the newest step the finding covered when it was made (the confirming step);
    the engine's `report()` extends it to the end of the episode (the last step the condition
    held, counting re-triggers within the rule's keep-firing window).
    """

    id: str
    rule: str
    pack: str
    category: str
    severity: str
    first_step: int
    last_step: int
    rank: int | None
    metric: str | None
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    suggestion: Suggestion = field(default_factory=Suggestion)

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON object, keys in the contract's order."""
        return {
            "id": self.id,
            "rule": self.rule,
            "pack": self.pack,
            "category": self.category,
            "severity": self.severity,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "rank": self.rank,
            "metric": self.metric,
            "message": self.message,
            "evidence": dict(self.evidence),
            "suggestion": self.suggestion.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Finding:
        s = obj.get("suggestion") or {}
        return cls(
            id=obj["id"],
            rule=obj["rule"],
            pack=obj.get("pack", ""),
            category=obj["category"],
            severity=obj["severity"],
            first_step=int(obj["first_step"]),
            last_step=int(obj["last_step"]),
            rank=obj.get("rank"),
            metric=obj.get("metric"),
            message=obj.get("message", ""),
            evidence=dict(obj.get("evidence") or {}),
            suggestion=Suggestion(
                overrides=tuple(s.get("overrides") or ()),
                apply=s.get("apply", "hot"),
                rationale=s.get("rationale", ""),
                monitor=s.get("monitor", ""),
                fallback=s.get("fallback", ""),
            ),
        )

    def replace(self, **changes: Any) -> Finding:
        return dataclasses.replace(self, **changes)

    @property
    def severity_rank(self) -> int:
        return severity_rank(self.severity)


@dataclass(frozen=True)
class Note:
    """An info-level remark about the diagnosis itself (a rule skipped, and why), said once."""

    rule: str
    pack: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "pack": self.pack, "message": self.message}


def sort_key(f: Finding) -> tuple:
    """Report order: most severe first, then earliest, then by rule, metric and rank."""
    return (
        -f.severity_rank,
        f.first_step,
        f.rule,
        f.metric or "",
        -1 if f.rank is None else f.rank,
    )


def overall_status(findings: list[Finding]) -> str:
    """healthy, or the highest severity among the findings."""
    return worst(f.severity for f in findings)
