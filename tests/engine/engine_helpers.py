"""Helpers shared by the tests in tests/engine/ (imported by name: conftest modules are not)."""

from __future__ import annotations

import functools

from hrm_doctor import synth


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
