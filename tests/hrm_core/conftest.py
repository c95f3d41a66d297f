"""Shared factories for the hrm_core tests: tiny configs and random batches."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from hrm_core.model import HRMConfig

# Tiny tensors on a shared 2-core machine: one intra-op thread avoids OpenMP spin contention
# (measured: a 2-block L step took 5 ms with 1 thread, 400 ms with 2 under load).
torch.set_num_threads(1)


@pytest.fixture
def make_config() -> Callable[..., HRMConfig]:
    """Factory: a tiny fp32 HRM config (hidden 32, one block per level), overridable."""

    def factory(**overrides: object) -> HRMConfig:
        values: dict[str, object] = {
            "vocab_size": 8,
            "seq_len": 12,
            "num_puzzle_identifiers": 5,
            "batch_size": 4,
            "H_cycles": 2,
            "L_cycles": 2,
            "H_layers": 1,
            "L_layers": 1,
            "hidden_size": 32,
            "num_heads": 2,
            "expansion": 2.0,
            "halt_max_steps": 4,
            "halt_exploration_prob": 0.0,
            "forward_dtype": "float32",
        }
        values.update(overrides)
        return HRMConfig(**values)

    return factory


@pytest.fixture
def make_batch() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: a random batch (inputs, labels, puzzle_identifiers) for a config, seeded."""

    def factory(config: HRMConfig, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        shape = (batch_size, config.seq_len)
        return {
            "inputs": torch.randint(0, config.vocab_size, shape, generator=gen),
            "labels": torch.randint(0, config.vocab_size, shape, generator=gen),
            "puzzle_identifiers": torch.randint(
                0, config.num_puzzle_identifiers, (batch_size,), generator=gen
            ),
        }

    return factory
