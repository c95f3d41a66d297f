"""Metric names of foreign runs -> the hrm-doctor catalogue (docs/interop.md, `--map FILE`).

The reference HRM trainer's W&B names (train/*) are catalogue names already and pass through.
Its evaluation metrics arrive as ``SET/NAME`` (a nested dict per evaluation set) and become
``eval/SET/NAME``; its ARC evaluator's ``ARC/pass@K`` (K in 1, 2, 5, 10, 100, 1000) becomes
``eval/arc/pass@K``, the name hrm-train logs. Anything else keeps its name (made valid:
characters outside [A-Za-z0-9_./@-] become ``_``) unless a map file renames or drops it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from hrm_doctor.errors import UserError

# Top-level prefixes of the catalogue (DESIGN.md, metric names): never treated as an eval set.
CATALOGUE_PREFIXES = frozenset(
    {"train", "eval", "grad", "param", "update", "act", "state", "emb", "nonfinite", "sys"}
)
# Per-set evaluation metrics of the reference trainer's evaluate().
EVAL_METRICS = frozenset(
    {
        "accuracy",
        "exact_accuracy",
        "q_halt_accuracy",
        "steps",
        "count",
        "lm_loss",
        "q_halt_loss",
        "q_continue_loss",
        "seconds",
    }
)
# Logged once by the reference trainer: run metadata, not a series.
META_NAMES = frozenset({"num_params"})
_INVALID = re.compile(r"[^A-Za-z0-9_./@-]")
_ARC_PASS = re.compile(r"ARC/pass@(\d+)")
_RESERVED = frozenset({"step", "rank", "time"})


@dataclass
class NameMap:
    """Rename foreign metric names. `rules` are (glob pattern, target or None to drop), in order;
    a target may use ``{1}``, ``{2}`` ... for the pattern's ``*`` parts."""

    rules: list[tuple[str, str | None]] = field(default_factory=list)
    _cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __call__(self, name: str) -> str | None:
        try:
            return self._cache[name]
        except KeyError:
            target = self._cache[name] = self._map(name)
            return target

    def _map(self, name: str) -> str | None:
        for pattern, target in self.rules:
            if pattern == name:
                return target
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(name, pattern):
                if target is None or "{" not in target:
                    return target
                return target.format("", *_glob_groups(pattern, name))
        return default_name(name)


def _glob_groups(pattern: str, name: str) -> list[str]:
    rx = "".join("(.*)" if c == "*" else re.escape(c) for c in pattern)
    m = re.fullmatch(rx, name)
    return list(m.groups()) if m else []


def default_name(name: str) -> str | None:
    """The built-in mapping: catalogue names as they are, SET/NAME -> eval/SET/NAME."""
    if m := _ARC_PASS.fullmatch(name):
        return f"eval/arc/pass@{m.group(1)}"
    name = _INVALID.sub("_", name.replace(".", "/") if "/" not in name else name)
    parts = name.split("/")
    if len(parts) == 2 and parts[0] not in CATALOGUE_PREFIXES and parts[1] in EVAL_METRICS:
        return f"eval/{name}"
    if name in _RESERVED:
        return f"{name}_"
    return name or None


def load_name_map(path: str | Path | None) -> NameMap:
    """Read a YAML map: ``{source_name_or_glob: catalogue_name | null}`` (null drops the metric)."""
    if path is None:
        return NameMap()
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read the name map ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML") from None
    if isinstance(data, dict) and set(data) == {"map"}:
        data = data["map"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: a name map is a YAML mapping of source name -> metric name")
    rules: list[tuple[str, str | None]] = []
    for key, target in data.items():
        if not isinstance(key, str) or not (target is None or isinstance(target, str)):
            raise UserError(f"{path}: key {key!r}: map a name to a metric name or null")
        if target is not None and (_INVALID.search(target.replace("{", "").replace("}", ""))):
            raise UserError(f"{path}: key {key!r}: {target!r} is not a valid metric name")
        rules.append((key, target))
    return NameMap(rules)
