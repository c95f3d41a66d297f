"""Hydra override lists and training command lines: what a patch, a restart and a trial change.

with_overrides(["hrm-train", "lr=1e-3"], ["lr=1e-4"])   -> ["hrm-train", "lr=1e-4"]
merge_overrides(["lr=1e-4"], ["lr=3e-5", "grad_clip_norm=1"])  -> later values win
"""

from __future__ import annotations

from collections.abc import Iterable

_RUN_DIR_PREFIXES = ("run_dir=", "+run_dir=", "++run_dir=")


def override_key(text: str) -> str:
    """The key of a `key=value` override, without Hydra's `+`/`++` prefix."""
    return text.split("=", 1)[0].lstrip("+")


def merge_overrides(*groups: Iterable[str]) -> list[str]:
    """One override per key, in first-seen key order; a later group's value wins."""
    merged: dict[str, str] = {}
    for group in groups:
        for o in group:
            merged[override_key(o)] = o
    return list(merged.values())


def with_overrides(command: list[str], overrides: Iterable[str]) -> list[str]:
    """The command with each `key=value` set once (Hydra refuses a key given twice)."""
    overrides = list(overrides)
    keys = {override_key(o) for o in overrides}
    kept = [a for a in command if not ("=" in a and override_key(a) in keys)]
    return kept + overrides


def run_dir_of(command: list[str]) -> str | None:
    """The value of a `run_dir=` Hydra override in a command line, if any."""
    for arg in command:
        for prefix in _RUN_DIR_PREFIXES:
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return None
