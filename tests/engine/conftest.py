"""Shared factories for the rule-engine tests: synthetic runs, in memory or written to disk."""

from __future__ import annotations

import functools

import pytest

from hrm_doctor.engine import synth
from hrm_doctor.engine.packs import load_rule_set


@functools.cache
def healthy(
    steps: int = 4000, seed: int = 0, world_size: int = 1, task: str = "sudoku"
) -> synth.SynthRun:
    return synth.healthy_run(steps, seed=seed, world_size=world_size, task=task)


@functools.cache
def sick(pathology: str, steps: int = 5000, seed: int = 0, onset: int = 2500) -> synth.SynthRun:
    ws = 4 if pathology == "straggler" else 1
    return synth.inject(
        synth.healthy_run(steps, seed=seed, world_size=ws), pathology, onset, seed=seed
    )


@pytest.fixture(scope="session")
def rule_set():
    return load_rule_set()
