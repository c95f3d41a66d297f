"""Per-puzzle embedding table: an fp32 buffer (saved, not a parameter) trained row-sparsely.

HRM_NOTES "Puzzle embeddings": only the batch's rows get gradients; the SignSGD optimizer in
`hrm_core.optim.sparse_signsgd` reads them from `local_weights.grad` and `local_ids`.
"""

from __future__ import annotations

import torch
from torch import nn


class CastedSparseEmbedding(nn.Module):
    """Zero-initialised [num_embeddings, dim] table; training forwards expose a leaf of the rows used."""

    def __init__(self, num_embeddings: int, embedding_dim: int, batch_size: int = 1) -> None:
        super().__init__()
        # The table: persistent (saved with the model) but a buffer, so `parameters()` and
        # the parameter count leave it out, and the dense optimizer never touches it.
        self.register_buffer("weights", torch.zeros(num_embeddings, embedding_dim))
        # Scratch for the optimizer: the rows used by the last gradient-carrying forward (a leaf
        # whose .grad backward fills) and their ids. Not saved.
        self.register_buffer(
            "local_weights", torch.zeros(batch_size, embedding_dim), persistent=False
        )
        self.register_buffer(
            "local_ids", torch.zeros(batch_size, dtype=torch.long), persistent=False
        )

    def forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        rows = self.weights[ids]  # (B, dim)
        if not (self.training and torch.is_grad_enabled()):
            # Evaluation, or the no-grad target-Q pass: plain lookup, scratch left untouched.
            return rows.to(dtype)
        # A fresh leaf each step: any batch size works and nothing modifies in place a tensor
        # that an autograd graph still holds.
        self.local_weights = rows.detach().requires_grad_(True)
        self.local_ids = ids.detach().to(torch.long)
        return self.local_weights.to(dtype)
