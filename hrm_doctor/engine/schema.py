"""The rule-pack format (schema version 1), validated with pydantic when a pack is loaded.

A pack is a YAML file::

    schema: 1                 # this format's version
    pack: core                # the pack's name (a rule's id is unique across all packs)
    version: "1.0.0"          # the pack's own version
    description: ...
    rules: [RULE, ...]        # new rules
    overrides: [PATCH, ...]   # changes to rules loaded before, by id (user packs)

docs/rules.md documents every field; `Rule` below is the reference.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hrm_doctor.severity import Severity

SCHEMA_VERSION = 1

Category = Literal[
    "nonfinite",
    "explosion",
    "vanishing",
    "q_divergence",
    "halting",
    "embedding",
    "loss_spike",
    "plateau",
    "overfit",
    "lr_schedule",
    "distributed",
    "throughput",
    "memory",
    "data",
    "config",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
Scope = Literal["any_rank", "per_rank", "rank0", "across_ranks"]

_ID = r"^[a-z0-9][a-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DetectorSpec(BaseModel):
    """`type` names a detector in the registry; the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str


class Guard(_Strict):
    """A condition on other metrics of the same rank, smoothed by a rolling median over `window`
    samples and carried forward between the steps where they are logged. Until a guard metric
    is logged (or when the run never logs it) the guard passes or blocks as `missing` says."""

    expr: str
    window: int = Field(1, ge=1, le=10_000)
    missing: Literal["pass", "block"] = "block"  # before a guard metric is logged / without it


class Repeat(_Strict):
    """Fire only when the condition has started `count` separate times within `within` steps;
    starts less than `gap` steps after the condition last held belong to the same event."""

    count: int = Field(ge=2, le=1000)
    within: int = Field(ge=1)
    gap: int = Field(50, ge=0)


class OverrideSpec(_Strict):
    """One Hydra override, computed from the run's config when the finding is made.

    Exactly one of `set` (a value or an expression such as ``recipe.lr``), `scale` (multiply
    the current value) applies; `min`/`max` bound the result; `when` makes it conditional.
    """

    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    set: float | int | bool | str | None = None
    scale: float | None = Field(None, gt=0)
    min: float | str | None = None
    max: float | str | None = None
    when: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> OverrideSpec:
        has_set = "set" in self.model_fields_set
        if has_set == (self.scale is not None):
            raise ValueError("give exactly one of 'set' and 'scale'")
        return self


class SuggestionSpec(_Strict):
    """What to do about a finding: config overrides and how to judge them."""

    overrides: list[OverrideSpec] = Field(default_factory=list)
    apply: Literal["hot", "restart"] | None = None
    rationale: str
    monitor: str
    fallback: str


class Rule(_Strict):
    """One diagnosis: which series to watch, what counts as wrong, and what to do about it."""

    id: str = Field(pattern=_ID, max_length=64)
    category: Category
    severity: Severity
    description: str = Field(min_length=20)
    metrics: list[str] = Field(default_factory=list)
    value: str | None = None
    scope: Scope = "any_rank"
    when: list[str] = Field(default_factory=list)
    guard: Guard | None = None
    detector: DetectorSpec
    for_: int = Field(1, alias="for", ge=1)
    keep_firing_for: int = Field(200, ge=0)
    repeat: Repeat | None = None
    message: str
    suggestion: SuggestionSpec
    enabled: bool = True

    @field_validator("metrics", "when", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _inputs(self) -> Rule:
        if self.value is not None and self.metrics:
            raise ValueError("give 'metrics' or 'value', not both")
        return self


class RulePatch(_Strict):
    """Changes to a rule loaded before (by `id`): detector parameters merge, the rest replace."""

    id: str = Field(pattern=_ID)
    severity: Severity | None = None
    enabled: bool | None = None
    metrics: list[str] | None = None
    scope: Scope | None = None
    when: list[str] | None = None
    guard: Guard | None = None
    detector: dict[str, Any] | None = None
    for_: int | None = Field(None, alias="for", ge=1)
    keep_firing_for: int | None = Field(None, ge=0)
    repeat: Repeat | None = None
    message: str | None = None
    suggestion: SuggestionSpec | None = None


class Pack(_Strict):
    """A rule pack file."""

    schema_: Literal[1] = Field(alias="schema")
    pack: str = Field(pattern=_ID)
    version: str
    description: str = ""
    rules: list[Rule] = Field(default_factory=list)
    overrides: list[RulePatch] = Field(default_factory=list)
