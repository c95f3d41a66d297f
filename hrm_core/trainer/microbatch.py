"""Gradient accumulation: a local batch cut into micro-batches, and their pieces joined again
for the probe (outputs, ACT carries) and for the puzzle-embedding SignSGD step (used rows)."""

from __future__ import annotations

from typing import Any

import torch


def rows(tensors: dict[str, Any], index: int, size: int) -> dict[str, Any]:
    """Micro-batch `index` of a local batch: rows [index*size, (index+1)*size)."""
    return {k: v[index * size : (index + 1) * size] for k, v in tensors.items()}


def join_outputs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The micro-batches' model outputs as one batch (for the probe)."""
    if len(parts) == 1:
        return parts[0]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def join_carries(carries: list[Any]) -> Any:
    """The micro-batches' ACT carries as one (for the probe)."""
    from hrm_core.model import ACTCarry

    if len(carries) == 1:
        return carries[0]
    flats = [c.to_dict() for c in carries]
    return ACTCarry.from_dict({k: torch.cat([f[k] for f in flats]) for k in flats[0]})


def join_embedding_rows(emb: Any, parts: list[tuple[Any, Any, Any]]) -> None:
    """With gradient accumulation each micro-batch's forward replaced the embedding's leaf of
    used rows; give the SignSGD step all of them (rows, their gradients, their ids)."""
    used = torch.cat([p[0] for p in parts]).requires_grad_(True)
    used.grad = torch.cat([p[1] for p in parts])
    emb.local_weights = used
    emb.local_ids = torch.cat([p[2] for p in parts])
