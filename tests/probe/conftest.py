"""Shared factories for the probe tests: a tiny HRM with its optimizers, one training step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from hrm_core.model import ACTLossHead, HRMConfig, build_model
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD

# Tiny tensors on a shared 2-core machine: one intra-op thread (see tests/hrm_core/conftest.py).
torch.set_num_threads(1)


@dataclass
class TinyRun:
    """A tiny HRM (hidden 32, 2 H blocks + 1 L block), its loss head, optimizers and data."""

    head: ACTLossHead
    opt: AdamAtan2
    emb_opt: CastedSparseEmbeddingSignSGD
    batch: dict[str, torch.Tensor]
    carry: Any = None
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> torch.nn.Module:
        return self.head.model

    @property
    def optimizers(self) -> dict[str, Any]:
        return {"model": self.opt, "puzzle_emb": self.emb_opt}

    def forward_backward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One ACT segment + backward; the carry advances. -> (loss, detached outputs)."""
        if self.carry is None:
            self.carry = self.head.initial_carry(self.batch)
        self.carry, loss, metrics, outputs, _ = self.head(self.carry, self.batch)
        (loss / len(self.batch["inputs"])).backward()
        self.last = {"loss": loss.detach(), "metrics": metrics, "outputs": outputs}
        return loss, outputs

    def optimizer_step(self) -> None:
        self.opt.step()
        self.emb_opt.step()

    def zero_grad(self) -> None:
        self.opt.zero_grad()
        self.emb_opt.zero_grad()


def make_tiny_config(**overrides: object) -> HRMConfig:
    values: dict[str, object] = {
        "vocab_size": 6,
        "seq_len": 8,
        "num_puzzle_identifiers": 5,
        "batch_size": 12,
        "H_cycles": 1,
        "L_cycles": 2,
        "H_layers": 2,
        "L_layers": 1,
        "hidden_size": 32,
        "num_heads": 2,
        "expansion": 2.0,
        "halt_max_steps": 3,
        "halt_exploration_prob": 0.3,
        "forward_dtype": "float32",
    }
    values.update(overrides)
    return HRMConfig(**values)


@pytest.fixture
def make_run() -> Callable[..., TinyRun]:
    """Factory: a seeded TinyRun (batch 12, puzzle ids with repeats), config overridable."""

    def factory(seed: int = 0, batch_size: int = 12, **overrides: object) -> TinyRun:
        torch.manual_seed(seed)
        config = make_tiny_config(batch_size=batch_size, **overrides)
        model = build_model("hrm_v1", config)
        with torch.no_grad():  # a q_head that halts sometimes (the init bias -5 never does)
            model.inner.q_head.bias.copy_(torch.tensor([0.0, 0.2]))
        head = ACTLossHead(model).train()
        gen = torch.Generator().manual_seed(seed)
        shape = (batch_size, config.seq_len)
        batch = {
            "inputs": torch.randint(0, config.vocab_size, shape, generator=gen),
            "labels": torch.randint(1, config.vocab_size, shape, generator=gen),
            "puzzle_identifiers": torch.randint(0, 3, (batch_size,), generator=gen),
        }
        opt = AdamAtan2(model.parameters(), lr=1e-2, weight_decay=0.1)
        emb_opt = CastedSparseEmbeddingSignSGD(model.puzzle_emb, lr=0.05, weight_decay=0.1)
        return TinyRun(head, opt, emb_opt, batch)

    return factory
