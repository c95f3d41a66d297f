"""Load rule packs: the built-in ones shipped in `rules/`, then user packs that add rules or
patch built-in ones by id. Every problem is reported as ``file:line:column: what is wrong``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hrm_doctor.control import HOT_KEYS
from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.detectors import REGISTRY
from hrm_doctor.engine.schema import Pack, Rule
from hrm_doctor.engine.suggest import check_template
from hrm_doctor.engine.yamlpos import Pos, PosDict, load_yaml_text, locate
from hrm_doctor.errors import UserError

# Built-in packs in evaluation and report order.
BUILTIN_ORDER = ("config", "core", "act", "hierarchy", "puzzle_emb", "distributed", "perf")


@dataclass(frozen=True)
class LoadedRule:
    """A validated rule with the pack it came from and where it is defined."""

    spec: Rule
    pack: str
    pos: Pos | None


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    description: str
    source: str
    builtin: bool
    rule_ids: tuple[str, ...]


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in evaluation order, and the packs they came from."""

    rules: tuple[LoadedRule, ...]
    packs: tuple[PackInfo, ...]

    def get(self, rule_id: str) -> LoadedRule | None:
        for r in self.rules:
            if r.spec.id == rule_id:
                return r
        return None


def builtin_sources() -> dict[str, tuple[str, str]]:
    """name -> (display path, YAML text) of each built-in pack."""
    import rules

    out: dict[str, tuple[str, str]] = {}
    for f in rules.pack_files():
        out[f.name.rsplit(".", 1)[0]] = (f"rules/{f.name}", f.read_text(encoding="utf-8"))
    return dict(sorted(out.items(), key=lambda kv: _builtin_rank(kv[0])))


def _builtin_rank(name: str) -> tuple[int, str]:
    return (BUILTIN_ORDER.index(name) if name in BUILTIN_ORDER else len(BUILTIN_ORDER), name)


class PackErrors(Exception):
    """All problems found in one pack, each already formatted as ``file:line:col: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "invalid rule pack")
        self.problems = problems


def _fmt_loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_problems(exc: ValidationError, data: Any, prefix: tuple = ()) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        extra = err["type"] == "extra_forbidden"
        pos = locate(data, loc, key=extra)
        msg = err["msg"]
        if extra:
            msg = f"unknown key {loc[-1]!r}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append(f"{pos}: {_fmt_loc(loc)}: {msg}")
    return problems


def _check_expr(
    text: Any, where: Pos | None, what: str, problems: list[str], metrics: bool
) -> None:
    if not isinstance(text, str):
        return
    try:
        e = ex.parse(text)
    except ex.ExprError as err:
        problems.append(f"{where}: {what}: {err} (column {err.col} of {text!r})")
        return
    if e.metrics and not metrics:
        problems.append(f"{where}: {what}: metrics ($name) are not allowed here")


def check_rule(rule: Rule, raw: Any, prefix: tuple, problems: list[str]) -> None:
    """Checks pydantic cannot make: registry, parameters, expressions, templates, scope."""
    det_raw = dict(rule.detector.model_extra or {})
    cls = REGISTRY.get(rule.detector.type)
    if cls is None:
        pos = locate(raw, prefix + ("detector", "type"))
        problems.append(
            f"{pos}: {_fmt_loc(prefix + ('detector', 'type'))}: unknown detector "
            f"{rule.detector.type!r} (known: {', '.join(sorted(REGISTRY))})"
        )
        return
    try:
        params = cls.Params.model_validate(det_raw)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, raw, prefix + ("detector",)))
        return
    for name, value in params:
        if isinstance(value, str) and name not in ("train", "step_time", "check"):
            _check_expr(
                value, locate(raw, prefix + ("detector", name)), f"detector.{name}", problems, False
            )
    if cls.kind == "config":
        _check_expr(
            params.check,
            locate(raw, prefix + ("detector", "check")),
            "detector.check",
            problems,
            False,
        )
    where = locate(raw, prefix)
    if cls.kind in ("config", "time"):
        if rule.metrics or rule.value:
            problems.append(
                f"{where}: {_fmt_loc(prefix)}: a {rule.detector.type} rule takes no metrics"
            )
    elif not rule.metrics and not rule.value:
        problems.append(f"{where}: {_fmt_loc(prefix)}: give 'metrics' (or 'value')")
    if (cls.kind == "ranks") != (rule.scope == "across_ranks"):
        problems.append(
            f"{where}: {_fmt_loc(prefix)}: detector {rule.detector.type!r} "
            + ("needs" if cls.kind == "ranks" else "cannot use")
            + " scope: across_ranks"
        )
    for i, cond in enumerate(rule.when):
        _check_expr(cond, locate(raw, prefix + ("when", i)), "when", problems, False)
    if rule.value is not None:
        _check_expr(rule.value, locate(raw, prefix + ("value",)), "value", problems, True)
    if rule.guard is not None:
        _check_expr(
            rule.guard.expr, locate(raw, prefix + ("guard", "expr")), "guard.expr", problems, True
        )
    for key in ("message",):
        bad = check_template(getattr(rule, key))
        if bad:
            problems.append(f"{locate(raw, prefix + (key,))}: {key}: {bad}")
    sugg = rule.suggestion
    for key in ("rationale", "monitor", "fallback"):
        bad = check_template(getattr(sugg, key))
        if bad:
            problems.append(f"{locate(raw, prefix + ('suggestion', key))}: suggestion.{key}: {bad}")
    for i, o in enumerate(sugg.overrides):
        at = prefix + ("suggestion", "overrides", i)
        if isinstance(o.set, str):
            _check_expr(o.set, locate(raw, at + ("set",)), "override.set", problems, False)
        for bound in ("min", "max"):
            if isinstance(getattr(o, bound), str):
                _check_expr(
                    getattr(o, bound),
                    locate(raw, at + (bound,)),
                    f"override.{bound}",
                    problems,
                    False,
                )
        if o.when:
            _check_expr(o.when, locate(raw, at + ("when",)), "override.when", problems, False)
        if sugg.apply == "hot" and o.key not in HOT_KEYS:
            problems.append(
                f"{locate(raw, at + ('key',))}: override {o.key!r} is not a hot key "
                f"({', '.join(sorted(HOT_KEYS))}): use apply: restart"
            )


def parse_pack(text: str, source: str) -> tuple[Pack, PosDict]:
    """Validate one pack's YAML; raise PackErrors with every problem found."""
    try:
        data = load_yaml_text(text, source)
    except UserError as exc:
        raise PackErrors([str(exc)]) from None
    if not isinstance(data, PosDict):
        raise PackErrors([f"{source}:1:1: a rule pack is a mapping with 'schema', 'pack', 'rules'"])
    if data.get("schema") not in (None, 1):
        raise PackErrors(
            [
                f"{locate(data, ('schema',))}: schema: version {data.get('schema')!r} is not "
                "supported (this hrm-doctor reads schema 1)"
            ]
        )
    try:
        pack = Pack.model_validate(data)
    except ValidationError as exc:
        raise PackErrors(_validation_problems(exc, data)) from None
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(pack.rules):
        if rule.id in seen:
            problems.append(
                f"{locate(data, ('rules', i, 'id'))}: rules[{i}].id: duplicate rule id "
                f"{rule.id!r} (also rules[{seen[rule.id]}])"
            )
        seen[rule.id] = i
        check_rule(rule, data, ("rules", i), problems)
    if problems:
        raise PackErrors(problems)
    return pack, data


def lint_pack(path: str | Path) -> list[str]:
    """Every problem in one pack file (empty when it is valid); a built-in name works too."""
    text, source = _read_pack(str(path))
    try:
        parse_pack(text, source)
    except PackErrors as exc:
        return exc.problems
    return []


def _read_pack(arg: str) -> tuple[str, str]:
    p = Path(arg)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if p.is_dir():
            raise UserError(f"{arg}: is a directory, not a rule pack file")
        try:
            return p.read_text(encoding="utf-8"), str(p)
        except FileNotFoundError:
            raise UserError(f"{arg}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{arg}: cannot read ({exc.__class__.__name__})") from None
    builtins = builtin_sources()
    if arg in builtins:
        source, text = builtins[arg]
        return text, source
    raise UserError(
        f"{arg}: no such rule pack file or built-in pack (built-in: {', '.join(builtins)})"
    )


def load_rule_set(selection: Sequence[str] | None = None) -> RuleSet:
    """The built-in packs (all, or those named in `selection`), then the user pack files in
    `selection`, in order. Raise UserError (file:line:col) on the first problem."""
    selection = list(selection or [])
    builtins = builtin_sources()
    names = [s for s in selection if s in builtins and not Path(s).exists()]
    files = [s for s in selection if s not in names]
    chosen = names or list(builtins)
    sources = [builtins[n] + (True,) for n in chosen]
    for f in files:
        text, source = _read_pack(f)
        sources.append((source, text, False))

    rules: list[LoadedRule] = []
    raws: dict[str, Any] = {}
    packs: list[PackInfo] = []
    for source, text, is_builtin in sources:
        try:
            pack, data = parse_pack(text, source)
        except PackErrors as exc:
            raise UserError(exc.problems[0]) from None
        ids = []
        for i, rule in enumerate(pack.rules):
            pos = locate(data, ("rules", i))
            if any(r.spec.id == rule.id for r in rules):
                other = next(r for r in rules if r.spec.id == rule.id)
                raise UserError(
                    f"{locate(data, ('rules', i, 'id'))}: rule id {rule.id!r} is already defined "
                    f"in pack {other.pack!r} (use 'overrides:' to change it)"
                )
            rules.append(LoadedRule(rule, pack.pack, pos))
            raws[rule.id] = data["rules"][i]
            ids.append(rule.id)
        for i, patch in enumerate(pack.overrides):
            _apply_patch(rules, raws, patch, data, i)
            ids.append(patch.id)
        packs.append(
            PackInfo(pack.pack, pack.version, pack.description, source, is_builtin, tuple(ids))
        )
    return RuleSet(tuple(rules), tuple(packs))


def _apply_patch(rules: list[LoadedRule], raws: dict, patch, data: PosDict, i: int) -> None:
    at = locate(data, ("overrides", i, "id"))
    idx = next((k for k, r in enumerate(rules) if r.spec.id == patch.id), None)
    if idx is None:
        raise UserError(f"{at}: overrides[{i}].id: no rule {patch.id!r} to override")
    merged = _plain(copy.deepcopy(raws[patch.id]))
    change = _plain(data["overrides"][i])
    for key, value in change.items():
        if key == "id":
            continue
        if key == "detector" and isinstance(value, dict):
            if "type" in value and value["type"] != merged["detector"].get("type"):
                merged["detector"] = value
            else:
                merged["detector"].update(value)
        else:
            merged[key] = value
    try:
        spec = Rule.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(
            f"{at}: override of {patch.id!r}: {_fmt_loc(err['loc'])}: {err['msg']}"
        ) from None
    problems: list[str] = []
    check_rule(spec, merged, (), problems)
    if problems:
        msg = problems[0].split(": ", 1)[-1]
        raise UserError(f"{at}: override of {patch.id!r}: {msg}")
    raws[patch.id] = merged
    rules[idx] = LoadedRule(spec, rules[idx].pack, rules[idx].pos)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
