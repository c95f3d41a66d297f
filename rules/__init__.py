"""The built-in rule packs (``rules/*.yaml``) and their unit tests (``rules/tests/*.yaml``).

They ship as package data, so a plain (non-editable) ``pip install .`` finds them through
`importlib.resources`, wherever the package lands.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def pack_files() -> list[Traversable]:
    """The built-in rule packs, sorted by file name."""
    root = resources.files(__name__)
    return sorted((p for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)


def test_files() -> list[Traversable]:
    """The rule unit-test files of the built-in packs, sorted by file name."""
    root = resources.files(__name__) / "tests"
    return sorted((p for p in root.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
