"""The search-space syntax of Hydra's Optuna sweeper, read into our own space entries.

Hydra users already have their spaces written as sweep overrides under
``hydra.sweeper.params``; `hrm-doctor tune --space` takes those lines as they are:

    lr: tag(log, interval(1e-5, 1e-3))   -> {log: [1e-5, 1e-3]}       (log-uniform)
    weight_decay: interval(0.0, 1.0)     -> {uniform: [0.0, 1.0]}
    arch.H_cycles: interval(1, 3)        -> {int: [1, 3]}             (both ends whole)
    arch.L_cycles: choice(1, 2, 4)       -> {choice: [1, 2, 4]}
    global_batch_size: range(64, 256, step=64) -> {int: [64, 256], step: 64}

with the sweeper's own meanings (hydra_plugins.hydra_optuna_sweeper: a `range` becomes an
Optuna int distribution from start to stop *inclusive*, an `interval` of two whole numbers an
int distribution, `tag(log, ...)` a log distribution).
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:(?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    |(?P<str>'[^']*'|"[^"]*")|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)|(?P<punct>[(),=]))""",
    re.VERBOSE,
)
_FUNCTIONS = ("choice", "range", "interval", "tag")


def looks_like_sweep(text: str) -> bool:
    """Whether a space entry is written in the sweeper's syntax (``choice(...)`` and friends)."""
    return bool(re.match(rf"\s*({'|'.join(_FUNCTIONS)})\s*\(", text))


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _literal(kind: str, value: str) -> Any:
    if kind == "num":
        return int(value) if re.fullmatch(r"[-+]?\d+", value) else float(value)
    if kind == "str":
        return value[1:-1]
    return {"true": True, "false": False, "null": None}.get(value.lower(), value)


class _Parser:
    """call := NAME '(' [arg (',' arg)*] ')' ; arg := [NAME '='] (call | literal)."""

    def __init__(self, text: str) -> None:
        self.text, self.toks, self.i = text, _tokens(text), 0

    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            want = repr(value) if value else "more"
            raise ValueError(f"expected {want} in {self.text!r}")
        self.i += 1
        return tok

    def value(self) -> Any:
        kind, word = self.take()
        if kind == "word" and self.peek() == ("punct", "("):
            return self.call(word)
        if kind == "punct":
            raise ValueError(f"unexpected {word!r} in {self.text!r}")
        return _literal(kind, word)

    def call(self, name: str) -> tuple[str, list[Any], dict[str, Any]]:
        if name not in _FUNCTIONS:
            raise ValueError(f"{name}(...) is not supported (use {', '.join(_FUNCTIONS)})")
        self.take("(")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        while self.peek() != ("punct", ")"):
            if self.peek() is None:
                raise ValueError(f"expected ')' at the end of {self.text!r}")
            if self.peek(1) == ("punct", "=") and self.peek()[0] == "word":
                key = self.take()[1]
                self.take("=")
                kwargs[key] = self.value()
            else:
                args.append(self.value())
            if self.peek() not in (("punct", ")"), None):
                self.take(",")
        self.take(")")
        return (name, args, kwargs)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def sweep_to_spec(text: str) -> dict[str, Any]:
    """One sweep override -> our space entry; ValueError with the reason when it is not one."""
    p = _Parser(text)
    node = p.value()
    if p.peek() is not None:
        raise ValueError(f"unexpected {p.peek()[1]!r} after the sweep in {text!r}")
    if not isinstance(node, tuple):
        raise ValueError(f"{text!r} is a fixed value, not a sweep")
    log = False
    name, args, kwargs = node
    if name == "tag":
        tags = [a for a in args if not isinstance(a, tuple)]
        inner = [a for a in args if isinstance(a, tuple)]
        if len(inner) != 1 or inner[0][0] != "interval":
            raise ValueError(
                f"{text!r}: tag(...) needs one interval(...) (tag(log, interval(a, b)))"
            )
        log = "log" in tags
        name, args, kwargs = inner[0]
    if name == "choice":
        if kwargs or not args or any(isinstance(a, tuple) for a in args):
            raise ValueError(f"{text!r}: choice(...) takes plain values")
        return {"choice": list(args)}
    if name == "interval":
        if len(args) != 2 or kwargs or not all(_number(a) for a in args):
            raise ValueError(f"{text!r}: interval(low, high) takes two numbers")
        whole = all(isinstance(a, int) for a in args)
        if whole:
            return {"int": list(args), **({"log": True} if log else {})}
        return {"log" if log else "uniform": [float(a) for a in args]}
    # range(start, stop[, step]): the sweeper's int (or stepped float) distribution, stop included
    step = kwargs.pop("step", args[2] if len(args) > 2 else 1)
    if kwargs or len(args) not in (2, 3) or not all(_number(a) for a in [*args[:2], step]):
        raise ValueError(f"{text!r}: range(start, stop, step=1) takes numbers")
    start, stop = args[0], args[1]
    if all(isinstance(a, int) for a in (start, stop, step)):
        return {"int": [start, stop], **({"step": step} if step != 1 else {})}
    return {"uniform": [float(start), float(stop)], "step": float(step)}
