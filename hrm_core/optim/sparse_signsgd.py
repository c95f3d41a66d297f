"""SignSGD for the sparse puzzle-embedding table, with decoupled weight decay on touched rows only.

HRM_NOTES "Puzzle embeddings and optimizers": gather the batch's row gradients and ids from
every rank, sum the gradients per id, then for each touched row p <- p*(1 - lr*wd) - lr*sign(g).
Every rank computes the same update, so the tables stay identical without a broadcast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch.optim import Optimizer

from hrm_core.model.sparse_embedding import CastedSparseEmbedding
from hrm_core.optim.schedule import closure_loss


def _all_gather_rows(tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Concatenate `tensor` from all ranks in rank order (gloo and nccl; same shape per rank)."""
    world_size = dist.get_world_size(group)
    chunks = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(chunks, tensor.contiguous(), group=group)  # a collective, not a host sync
    return torch.cat(chunks, dim=0)


class CastedSparseEmbeddingSignSGD(Optimizer):
    """Sign-SGD over the rows of one or more `CastedSparseEmbedding` tables used this step.

    Reads `local_weights.grad` and `local_ids` written by the embedding's training forward.
    Uses torch.distributed when it is initialised (all ranks must call `step` together, with
    the same local batch size). After each step, `last_stats` holds 0-d device tensors for the
    probe: rows_touched and sign_flip_frac (entries of touched rows whose sign flipped).
    """

    def __init__(
        self,
        embeddings: CastedSparseEmbedding | Iterable[CastedSparseEmbedding],
        lr: float = 1e-2,
        weight_decay: float = 0.1,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        if isinstance(embeddings, CastedSparseEmbedding):
            embeddings = [embeddings]
        self.embeddings = list(embeddings)
        if not self.embeddings:
            raise ValueError("embeddings: need at least one CastedSparseEmbedding")
        if not lr >= 0.0:
            raise ValueError(f"lr: must be >= 0 (got {lr})")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay: must be >= 0 (got {weight_decay})")
        # One group per table; the table in the group is bookkeeping only (lr, wd, state_dict):
        # `step` reads the module's current buffers, which stay valid after `.to(device)`.
        groups = [{"params": [emb.weights]} for emb in self.embeddings]
        super().__init__(groups, {"lr": lr, "weight_decay": weight_decay})
        self.process_group = process_group
        self.last_stats: dict[str, torch.Tensor] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for emb in self.embeddings:
            emb.local_weights.grad = None
        super().zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure_loss(closure)
        distributed = dist.is_available() and dist.is_initialized()
        for group, emb in zip(self.param_groups, self.embeddings, strict=True):
            grad = emb.local_weights.grad
            if grad is None:  # no gradient-carrying forward since the last zero_grad
                continue
            ids = emb.local_ids
            if distributed and dist.get_world_size(self.process_group) > 1:
                grad = _all_gather_rows(grad, self.process_group)  # (world*N, D)
                ids = _all_gather_rows(ids, self.process_group)  # (world*N,)
            self._update_rows(emb.weights, grad, ids, group["lr"], group["weight_decay"])
        return loss

    def _update_rows(
        self, table: torch.Tensor, grad: torch.Tensor, ids: torch.Tensor, lr: float, wd: float
    ) -> None:
        """Sign update of the rows `ids` of `table`, with per-id summed gradients.

        The per-id sums come from a (M, M) same-id matrix product instead of `unique`, whose
        data-dependent output size would force a host sync on GPUs. Every copy of an id takes
        the row of its first occurrence, so duplicates write bit-identical values (deterministic).
        """
        same_id = ids.unsqueeze(0) == ids.unsqueeze(1)  # (M, M)
        first_of = same_id.to(torch.uint8).argmax(dim=1)  # (M,): index of the id's first row
        summed = (same_id.to(grad.dtype) @ grad)[first_of]  # (M, D): total grad of each id
        old = table[ids]  # (M, D)
        new = old * (1.0 - lr * wd) - lr * torch.sign(summed)
        table[ids] = new.to(table.dtype)

        is_first = first_of == torch.arange(len(ids), device=ids.device)  # (M,)
        rows_touched = is_first.sum()
        flipped = ((old * new) < 0) & is_first.unsqueeze(1)
        self.last_stats = {
            "rows_touched": rows_touched,
            "sign_flip_frac": flipped.sum() / (rows_touched * table.shape[1]).clamp_min(1),
        }
