"""The search space: Hydra keys with a range or a set of choices, from YAML or a task preset.

A space file maps each Hydra key to exactly one of ``log: [low, high]`` (log-uniform),
``uniform: [low, high]`` (with an optional ``step``), ``int: [low, high]`` (optional ``step``
and ``log: true``) or ``choice: [a, b, ...]``; or, as Hydra's Optuna sweeper reads them, to a
sweep: ``tag(log, interval(1e-5, 1e-3))``, ``interval(0, 1)``, ``choice(1, 2, 4)``,
``range(1, 4)`` (tune.sweep_grammar). A Hydra config whose ``hydra.sweeper.params`` holds the
space is read from there. Errors name ``file:line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError
from hrm_doctor.tune.sweep_grammar import looks_like_sweep, sweep_to_spec

KINDS = ("log", "uniform", "int", "choice")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Param:
    """One searched Hydra key: `kind` is one of KINDS; `low`/`high` for ranges, `choices` else."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    step: float | None = None  # int and uniform: a grid of this spacing
    log: bool = False  # int: log-uniform over the integers

    def suggest(self, trial: Any) -> Any:
        if self.kind == "log":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step)
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_categorical(self.key, list(self.choices))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step is not None:
            out["step"] = self.step
        if self.log and self.kind == "int":
            out["log"] = True
        return out


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    source: str  # a file path, or "preset NAME"

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask the trial for a value of every key: {key: value}."""
        return {p.key: p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        """The grid for Optuna's GridSampler (every key must be a choice)."""
        ranged = [p.key for p in self.params if p.kind != "choice"]
        if ranged:
            raise UserError(
                f"--sampler grid: {self.source}: {', '.join(ranged)} not a `choice` (grid needs "
                "choices only)"
            )
        return {p.key: list(p.choices) for p in self.params}

    def to_json(self) -> dict[str, Any]:
        return {p.key: p.to_json() for p in self.params}


def format_override(key: str, value: Any) -> str:
    """`key=value` as Hydra reads it (floats in a short exact form)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, float):
        return f"{key}={value:.6g}"
    if value is None:
        return f"{key}=null"
    return f"{key}={value}"


# ---- parsing ------------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_MODIFIERS = {"step": ("int", "uniform"), "log": ("int",)}


def _parse_param(key: Any, spec: Any, where: str) -> Param:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise UserError(f"{where}: {key!r} is not a Hydra key (e.g. lr, arch.H_cycles)")
    if isinstance(spec, str) and looks_like_sweep(spec):
        try:
            spec = sweep_to_spec(spec)
        except ValueError as exc:
            raise UserError(f"{where}: {key}: {exc}") from None
    # `log: true` beside `int:` is a modifier; `log: [low, high]` is the log-uniform kind
    is_kind = (
        {k: k in KINDS and not isinstance(v, bool) for k, v in spec.items()}
        if isinstance(spec, dict)
        else {}
    )
    kinds = [k for k, yes in is_kind.items() if yes]
    extra = [k for k, yes in is_kind.items() if not yes]
    if len(kinds) != 1 or any(k not in _MODIFIERS for k in extra):
        raise UserError(
            f"{where}: {key}: expected exactly one of {', '.join(k + ':' for k in KINDS)} "
            f"(e.g. `{key}: {{log: [1.0e-5, 1.0e-3]}}`) or a sweep like "
            "`tag(log, interval(1e-5, 1e-3))`"
        )
    kind, value = kinds[0], spec[kinds[0]]
    for k in extra:
        if kind not in _MODIFIERS[k]:
            raise UserError(f"{where}: {key}: `{k}` goes with {' or '.join(_MODIFIERS[k])} only")
    step = spec.get("step")
    log = spec["log"] if "log" in extra else False
    if step is not None and (not _number(step) or step <= 0):
        raise UserError(f"{where}: {key}: step must be a positive number (got {step!r})")
    if not isinstance(log, bool):
        raise UserError(f"{where}: {key}: log must be true or false (got {log!r})")
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise UserError(f"{where}: {key}: choice must be a non-empty list")
        if any(isinstance(v, dict | list) for v in value):
            raise UserError(f"{where}: {key}: choices must be plain values (numbers, strings)")
        return Param(key, kind, choices=tuple(value))
    if not isinstance(value, list) or len(value) != 2 or not all(_number(v) for v in value):
        raise UserError(f"{where}: {key}: {kind} needs [low, high], two numbers")
    low, high = value
    if not low < high:
        raise UserError(f"{where}: {key}: low ({low}) must be below high ({high})")
    if kind == "log" and low <= 0:
        raise UserError(f"{where}: {key}: log range needs low > 0 (got {low})")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise UserError(f"{where}: {key}: int range needs whole numbers")
    if kind == "int" and log and low <= 0:
        raise UserError(f"{where}: {key}: log range needs low > 0 (got {low})")
    return Param(key, kind, float(low), float(high), step=step, log=log)


def parse_space(text: str, source: str) -> SearchSpace:
    """Parse a space from YAML text; UserError('file:line:col: ...') when it is wrong."""
    from hrm_doctor.engine.yamlpos import PosDict, load_yaml_text

    data = load_yaml_text(text, source)
    data = _sweeper_params(data)
    if data is None or data == {}:
        raise UserError(f"{source}:1:1: empty search space: give at least one key")
    if not isinstance(data, PosDict):
        pos = getattr(data, "pos", None)
        raise UserError(f"{pos or source + ':1:1'}: expected a mapping of Hydra keys to ranges")
    params = []
    for key, spec in data.items():
        where = str(data.key_pos.get(key, data.pos))
        params.append(_parse_param(key, spec, where))
    return SearchSpace(tuple(params), source)


def _sweeper_params(data: Any) -> Any:
    """A Hydra config (``hydra: {sweeper: {params: ...}}``): its sweeper's params."""
    node = data
    for part in ("hydra", "sweeper", "params"):
        if not isinstance(node, dict) or part not in node:
            return data
        node = node[part]
    return node


def load_space(path: str | Path) -> SearchSpace:
    from hrm_doctor.engine.yamlpos import read_text

    return parse_space(read_text(path, "--space"), str(path))


# ---- the built-in spaces, around the published recipes (shared/HRM_NOTES.md) --------------------

# Sudoku/Maze recipes: lr 7e-5..3e-4, emb lr = lr, weight decays 0.1..1.0; ARC: emb lr 1e-2.
_SUDOKU = {
    "lr": {"log": [1.0e-5, 1.0e-3]},
    "puzzle_emb_lr": {"log": [1.0e-5, 1.0e-2]},
    "weight_decay": {"log": [1.0e-2, 2.0]},
    "puzzle_emb_weight_decay": {"log": [1.0e-2, 2.0]},
    "arch.halt_exploration_prob": {"uniform": [0.0, 0.3]},
}
_ARC = {**_SUDOKU, "lr": {"log": [3.0e-5, 3.0e-4]}, "puzzle_emb_lr": {"log": [1.0e-3, 1.0e-1]}}
# the smoke model is tiny and short-lived: it wants larger steps than the recipes
_SMOKE = {**_SUDOKU, "lr": {"log": [1.0e-4, 1.0e-2]}, "puzzle_emb_lr": {"log": [1.0e-3, 1.0e-1]}}
PRESET_SPACES: dict[str, dict[str, Any]] = {
    "smoke": _SMOKE,
    "sudoku_extreme_1k": _SUDOKU,
    "sudoku_extreme_1k_laptop": _SUDOKU,
    "sudoku_hard_full": _SUDOKU,
    "maze_30x30_hard_1k": _SUDOKU,
    "arc1": _ARC,
    "arc2": _ARC,
}
CYCLES = {"arch.H_cycles": {"choice": [1, 2, 3]}, "arch.L_cycles": {"choice": [1, 2, 4, 8]}}
SMOKE_CYCLES = {"arch.H_cycles": {"choice": [1, 2]}, "arch.L_cycles": {"choice": [1, 2, 3]}}


def preset_of(command: list[str]) -> str | None:
    """The task preset a training command selects (`experiment=NAME` or `task=NAME`), if any."""
    found = None
    for arg in command:
        key, _, value = arg.lstrip("+").partition("=")
        if key in ("experiment", "task") and value:
            found = value if key == "experiment" or found is None else found
    return found


def default_space(preset: str | None, *, cycles: bool = False) -> SearchSpace:
    """The built-in space of a preset (the Sudoku one for an unknown preset)."""
    name = preset if preset in PRESET_SPACES else "sudoku_extreme_1k"
    spec = dict(PRESET_SPACES[name])
    if cycles:
        spec.update(SMOKE_CYCLES if name == "smoke" else CYCLES)
    params = tuple(_parse_param(k, v, f"preset {name}") for k, v in spec.items())
    return SearchSpace(params, f"preset {name}")
