"""Turn a rule's suggestion and message templates into text for one run: Hydra overrides
computed from the run's config (``lr`` halved, the recipe's embedding lr), and messages with
the evidence filled in."""

from __future__ import annotations

import math
import re
from typing import Any

from hrm_doctor.control import HOT_KEYS
from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.context import RunContext
from hrm_doctor.engine.finding import Suggestion
from hrm_doctor.engine.schema import OverrideSpec, SuggestionSpec

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_./]*)(?::([^{}]*))?\}")


def format_value(v: Any) -> str:
    """A Hydra override value: null, true/false, ints as ints, floats with 3 significant digits."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e6:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return str(v)


def compute_override(spec: OverrideSpec, ctx: RunContext) -> str | None:
    """``key=value`` for this run, or None when its `when` is false or it needs a missing key."""
    try:
        if spec.when is not None and not ex.parse(spec.when).evaluate(ctx.lookup):
            return None
        if "set" in spec.model_fields_set:
            value = spec.set
            if isinstance(value, str):
                value = ex.parse(value).evaluate(ctx.lookup)
        else:
            current = ctx.lookup(spec.key)
            if not isinstance(current, (int, float)) or isinstance(current, bool):
                return None
            value = float(current) * float(spec.scale)
            if isinstance(current, int):  # a count stays a count (eval_interval, steps)
                value = max(1, round(value))
    except ex.MissingName:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            lo = ex.parse(spec.min).evaluate(ctx.lookup) if isinstance(spec.min, str) else spec.min
            hi = ex.parse(spec.max).evaluate(ctx.lookup) if isinstance(spec.max, str) else spec.max
        except ex.MissingName:
            lo = hi = None
        if lo is not None:
            value = max(value, lo)
        if hi is not None:
            value = min(value, hi)
    return f"{spec.key}={format_value(value)}"


def build_suggestion(spec: SuggestionSpec, ctx: RunContext) -> Suggestion:
    overrides = tuple(o for o in (compute_override(s, ctx) for s in spec.overrides) if o)
    keys = [o.split("=", 1)[0] for o in overrides]
    apply = spec.apply or ("hot" if all(k in HOT_KEYS for k in keys) else "restart")
    fields = {"task": ctx.task}
    return Suggestion(
        overrides=overrides,
        apply=apply,
        rationale=render_template(spec.rationale, fields, ctx),
        monitor=render_template(spec.monitor, fields, ctx),
        fallback=render_template(spec.fallback, fields, ctx),
    )


def check_template(text: str) -> str | None:
    """None when `text` is a valid message template, else what is wrong."""
    rest = _FIELD.sub("", text)
    if "{" in rest or "}" in rest:
        return "unbalanced '{' or '}' in template (write '{{' for a literal brace)"
    for m in _FIELD.finditer(text):
        if m.group(2):
            try:
                format(1.5, m.group(2))
            except ValueError:
                return f"bad format spec {m.group(2)!r} for field {m.group(1)!r}"
    return None


def render_template(text: str, fields: dict[str, Any], ctx: RunContext | None = None) -> str:
    """Fill ``{name}`` / ``{name:.3g}`` from `fields`, then from the run's config."""

    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name, spec = m.group(1), m.group(2) or ""
        if name in fields:
            value = fields[name]
        elif ctx is not None:
            try:
                value = ctx.lookup(name)
            except ex.MissingName:
                return "?"
        else:
            return "?"
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return format(value, spec)
            except ValueError:
                return str(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return _FIELD.sub(sub, text)
