"""Safe YAML loading that remembers where every key and value came from (file:line:column).

Rule packs are user input: errors must name the file, line and column. PyYAML's `SafeLoader`
(no tags that construct Python objects, so no code execution) builds `PosDict`/`PosList`
containers that carry the marks of their keys and values; duplicate keys are an error rather
than the silent "last one wins" of plain `yaml.safe_load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml

from hrm_doctor.errors import UserError


class Pos(NamedTuple):
    """A place in a file; line and column count from 1, as editors show them."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class PosDict(dict):
    """A mapping from YAML with the position of each key and of each value."""

    pos: Pos
    key_pos: dict[Any, Pos]
    value_pos: dict[Any, Pos]


class PosList(list):
    """A sequence from YAML with the position of each item."""

    pos: Pos
    item_pos: list[Pos]


def _mark(file: str, node: yaml.Node) -> Pos:
    return Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    file_name = "<yaml>"


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    out = PosDict()
    out.pos = _mark(loader.file_name, node)
    out.key_pos, out.value_pos = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        kpos = _mark(loader.file_name, key_node)
        if isinstance(key, (dict, list)):
            raise UserError(f"{kpos}: a mapping key must be a plain value")
        if key in out:
            raise UserError(f"{kpos}: duplicate key {key!r} (first at {out.key_pos[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_pos[key] = kpos
        out.value_pos[key] = _mark(loader.file_name, value_node)
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    out = PosList(loader.construct_object(child, deep=True) for child in node.value)
    out.pos = _mark(loader.file_name, node)
    out.item_pos = [_mark(loader.file_name, child) for child in node.value]
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml_text(text: str, file_name: str) -> Any:
    """Parse one YAML document; raise UserError('file:line:col: problem') when it is invalid."""
    loader = _Loader(text)
    loader.file_name = file_name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file_name}:{mark.line + 1}:{mark.column + 1}" if mark else file_name
        problem = exc.problem or exc.context or "invalid YAML"
        raise UserError(f"{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{file_name}: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()


def read_text(path: str | Path, what: str = "") -> str:
    """A text file's content; a missing or unreadable file is a one-line UserError."""
    path = Path(path)
    hint = f" ({what})" if what else ""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc.__class__.__name__}){hint}") from None


def locate(data: Any, loc: tuple[Any, ...], *, key: bool = False) -> Pos | None:
    """The position of the item at `loc` (keys and indices) inside loaded YAML, or the closest
    enclosing container's position when the path goes further than the file does."""
    best: Pos | None = getattr(data, "pos", None)
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, PosDict) and part in node:
            best = node.key_pos[part] if (last and key) else node.value_pos[part]
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_pos[part]
            node = node[part]
        else:
            break
    return best
