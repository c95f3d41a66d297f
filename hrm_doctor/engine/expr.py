"""A tiny, safe expression language for rule packs (no `eval`, no attribute access).

Used for config conditions (``arch.halt_max_steps > 1 and task == 'sudoku'``), for parameters
computed from the run's config (``lr_warmup_steps + 500``) and for per-row values and guards
over metrics logged in the same row (``$sys/comm_s / $sys/step_time_s``: write spaces around
``/`` after a metric name). Grammar, loosest first::

    or  := and ('or' and)*          and := not ('and' not)*        not := 'not' not | cmp
    cmp := sum [(== | != | < | <= | > | >=) sum | [not] in sum | is [not] set]
    sum := prod (('+' | '-') prod)* prod := unary (('*' | '/') unary)*  unary := '-' unary | atom
    atom := NUMBER | 'STRING' | null | true | false | NAME | $METRIC | FUNC(args) | (or) | [list]

NAME is a dotted config key (``arch.H_cycles``, ``recipe.lr``, ``meta.world_size``); FUNC is
one of abs, min, max, log10, sqrt, and default(KEY, VALUE) for a key the run may lack. Arrays (numpy) work element-wise, so one parsed expression serves
a scalar config check and a vectorised per-row value.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<metric>\$[A-Za-z0-9_.*?/-]*[A-Za-z0-9_*?])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "set", "null", "true", "false", "none"}
_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": np.abs,
    "min": lambda *a: a[0] if len(a) == 1 else _fold(np.minimum, a),
    "max": lambda *a: a[0] if len(a) == 1 else _fold(np.maximum, a),
    "log10": np.log10,
    "sqrt": np.sqrt,
    "default": None,  # default(KEY, VALUE): KEY's value, or VALUE when the run lacks KEY
}
_CMP = {
    "==": lambda a, b: (a is None and b is None) if (a is None or b is None) else a == b,
    "!=": lambda a, b: not (a is None and b is None) if (a is None or b is None) else a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _fold(fn, args):
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out


class ExprError(ValueError):
    """A malformed expression; `col` is the 1-based column inside the expression text."""

    def __init__(self, message: str, col: int = 1) -> None:
        super().__init__(message)
        self.col = col


class MissingName(LookupError):
    """A config key or metric that the run does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Expr:
    """A parsed expression: evaluate it with resolvers for names and metrics."""

    text: str
    tree: tuple
    names: frozenset[str]
    metrics: frozenset[str]

    def evaluate(
        self,
        name: Callable[[str], Any],
        metric: Callable[[str], Any] | None = None,
    ) -> Any:
        return _eval(self.tree, name, metric)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse `text`; raise ExprError naming the column of the problem. Cached: an engine per
    run of a sweep parses the same few hundred expressions (an `Expr` is never changed)."""
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    text = str(text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].strip()[:1]!r}", pos + 1)
        kind = m.lastgroup
        raw = m.group(kind)
        col = m.start(kind) + 1
        if kind == "num":
            tokens.append(("num", float(raw) if any(c in raw for c in ".eE") else int(raw), col))
        elif kind == "str":
            tokens.append(("str", raw[1:-1], col))
        elif kind == "metric":
            tokens.append(("metric", raw[1:], col))
        elif kind == "name":
            tokens.append(("kw" if raw.lower() in _KEYWORDS else "name", raw, col))
        else:
            tokens.append(("op", raw, col))
        pos = m.end()
    parser = _Parser(tokens, len(text) + 1)
    tree = parser.parse_or()
    if parser.i != len(tokens):
        raise ExprError(f"unexpected {tokens[parser.i][1]!r}", tokens[parser.i][2])
    names: set[str] = set()
    metrics: set[str] = set()
    _collect(tree, names, metrics)
    return Expr(text, tree, frozenset(names), frozenset(metrics))


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any, int]], end_col: int) -> None:
        self.t = tokens
        self.i = 0
        self.end_col = end_col

    def peek(self, kind: str | None = None, value: str | None = None) -> bool:
        if self.i >= len(self.t):
            return False
        k, v, _ = self.t[self.i]
        if kind == "kw":
            return k == "kw" and (value is None or str(v).lower() == value)
        return (kind is None or k == kind) and (value is None or v == value)

    def take(self) -> tuple[str, Any, int]:
        if self.i >= len(self.t):
            raise ExprError("unexpected end of expression", self.end_col)
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        k, v, c = self.take()
        if v != value:
            raise ExprError(f"expected {value!r}, found {v!r}", c)

    def parse_or(self) -> tuple:
        node = self.parse_and()
        while self.peek("kw", "or"):
            self.take()
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> tuple:
        node = self.parse_not()
        while self.peek("kw", "and"):
            self.take()
            node = ("and", node, self.parse_not())
        return node

    def parse_not(self) -> tuple:
        if self.peek("kw", "not"):
            self.take()
            return ("not", self.parse_not())
        return self.parse_cmp()

    def parse_cmp(self) -> tuple:
        left = self.parse_sum()
        if self.peek("op") and self.t[self.i][1] in _CMP:
            op = self.take()[1]
            return ("cmp", op, left, self.parse_sum())
        if self.peek("kw", "in"):
            self.take()
            return ("in", left, self.parse_sum())
        if self.peek("kw", "not") and self.i + 1 < len(self.t):
            k, v, _ = self.t[self.i + 1]
            if k == "kw" and str(v).lower() == "in":
                self.i += 2
                return ("not", ("in", left, self.parse_sum()))
        if self.peek("kw", "is"):
            self.take()
            negate = False
            if self.peek("kw", "not"):
                self.take()
                negate = True
            k, v, c = self.take()
            if not (k == "kw" and str(v).lower() == "set"):
                raise ExprError("expected 'set' after 'is'", c)
            if left[0] not in ("name", "metric"):
                raise ExprError("'is set' applies to a config key or a metric", c)
            node = ("isset", left)
            return ("not", node) if negate else node
        return left

    def parse_sum(self) -> tuple:
        node = self.parse_prod()
        while self.peek("op", "+") or self.peek("op", "-"):
            op = self.take()[1]
            node = ("arith", op, node, self.parse_prod())
        return node

    def parse_prod(self) -> tuple:
        node = self.parse_unary()
        while self.peek("op", "*") or self.peek("op", "/"):
            op = self.take()[1]
            node = ("arith", op, node, self.parse_unary())
        return node

    def parse_unary(self) -> tuple:
        if self.peek("op", "-"):
            self.take()
            return ("neg", self.parse_unary())
        return self.parse_atom()

    def parse_atom(self) -> tuple:
        k, v, c = self.take()
        if k == "num" or k == "str":
            return ("const", v)
        if k == "kw":
            low = str(v).lower()
            if low in ("null", "none"):
                return ("const", None)
            if low in ("true", "false"):
                return ("const", low == "true")
            raise ExprError(f"unexpected keyword {v!r}", c)
        if k == "metric":
            if not v:
                raise ExprError("'$' must be followed by a metric name", c)
            return ("metric", v)
        if k == "name":
            if self.peek("op", "("):
                if v not in _FUNCS:
                    raise ExprError(f"unknown function {v!r} (use {', '.join(_FUNCS)})", c)
                self.take()
                args = [self.parse_or()]
                while self.peek("op", ","):
                    self.take()
                    args.append(self.parse_or())
                self.expect(")")
                return ("call", v, tuple(args))
            return ("name", v)
        if v == "(":
            node = self.parse_or()
            self.expect(")")
            return node
        if v == "[":
            items = []
            if not self.peek("op", "]"):
                items.append(self.parse_or())
                while self.peek("op", ","):
                    self.take()
                    items.append(self.parse_or())
            self.expect("]")
            return ("list", tuple(items))
        raise ExprError(f"unexpected {v!r}", c)


def _collect(node: tuple, names: set[str], metrics: set[str]) -> None:
    tag = node[0]
    if tag == "name":
        names.add(node[1])
    elif tag == "metric":
        metrics.add(node[1])
    elif tag == "const":
        return
    else:
        for child in node[1:]:
            if isinstance(child, tuple):
                if child and isinstance(child[0], str):
                    _collect(child, names, metrics)
                else:
                    for c in child:
                        _collect(c, names, metrics)


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _eval(node: tuple, name: Callable[[str], Any], metric: Callable[[str], Any] | None) -> Any:
    tag = node[0]
    if tag == "const":
        return node[1]
    if tag == "name":
        return name(node[1])
    if tag == "metric":
        if metric is None:
            raise MissingName("$" + node[1])
        return metric(node[1])
    if tag == "list":
        return [_eval(n, name, metric) for n in node[1]]
    if tag == "neg":
        return -_num(_eval(node[1], name, metric))
    if tag == "not":
        v = _eval(node[1], name, metric)
        return np.logical_not(v) if _is_array(v) else not v
    if tag in ("and", "or"):
        a = _eval(node[1], name, metric)
        if not _is_array(a):
            if tag == "and" and not a:
                return False
            if tag == "or" and a:
                return True
        b = _eval(node[2], name, metric)
        if _is_array(a) or _is_array(b):
            fn = np.logical_and if tag == "and" else np.logical_or
            return fn(np.asarray(a, bool), np.asarray(b, bool))
        return bool(b)
    if tag == "isset":
        try:
            v = _eval(node[1], name, metric)
        except MissingName:
            return False
        return v is not None
    if tag == "cmp":
        a = _eval(node[2], name, metric)
        b = _eval(node[3], name, metric)
        if (a is None or b is None) and node[1] not in ("==", "!="):
            return False
        try:
            return _CMP[node[1]](a, b)
        except TypeError:
            return False
    if tag == "in":
        a = _eval(node[1], name, metric)
        b = _eval(node[2], name, metric)
        return a in b if isinstance(b, (list, str)) else False
    if tag == "arith":
        a = _num(_eval(node[2], name, metric))
        b = _num(_eval(node[3], name, metric))
        op = node[1]
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if _is_array(a) or _is_array(b):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.divide(a, b)
        return a / b if b != 0 else (math.copysign(math.inf, a) if a else math.nan)
    if tag == "call" and node[1] == "default":
        if len(node[2]) != 2:
            raise ExprError("default() takes two arguments: default(KEY, VALUE)")
        try:
            value = _eval(node[2][0], name, metric)
        except MissingName:
            value = None
        return _eval(node[2][1], name, metric) if value is None else value
    if tag == "call":
        args = [_num(_eval(a, name, metric)) for a in node[2]]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _FUNCS[node[1]](*args)
        return out if _is_array(out) else float(out)
    raise AssertionError(f"unknown node {tag}")


def _num(x: Any) -> Any:
    if _is_array(x) or isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    if isinstance(x, bool):
        return int(x)
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ExprError(f"{x!r} is not a number") from None
