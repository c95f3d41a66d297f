"""Model and optimizers from a TrainConfig and the data's metadata (for training and preflight)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hrm_core.config import TrainConfig
from hrm_core.data import DatasetMetadata
from hrm_core.model import HRMConfig
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD


def hrm_config_for(cfg: TrainConfig, meta: DatasetMetadata, micro_batch: int) -> HRMConfig:
    """The model's config: the `arch.*` keys plus the sizes that come from the data."""
    arch = cfg.arch.model_dump()
    arch.pop("name")
    forward_dtype = "auto" if cfg.forward_dtype == "auto" else cfg.forward_dtype
    return HRMConfig.from_dict(
        {
            "arch": {**arch, "forward_dtype": forward_dtype},
            "vocab_size": meta.vocab_size,
            "seq_len": meta.seq_len,
            "num_puzzle_identifiers": meta.num_puzzle_identifiers,
            "batch_size": micro_batch,
        }
    )


def data_sizes(cfg: TrainConfig, meta: DatasetMetadata) -> dict[str, Any]:
    """What a checkpoint must agree on with the data (checked on resume and in preflight)."""
    return {
        "vocab_size": meta.vocab_size,
        "seq_len": meta.seq_len,
        "num_puzzle_identifiers": meta.num_puzzle_identifiers,
        "puzzle_emb_ndim": cfg.arch.puzzle_emb_ndim,
    }


def build_optimizers(
    model: nn.Module, cfg: TrainConfig
) -> tuple[AdamAtan2, CastedSparseEmbeddingSignSGD | None]:
    """Adam-atan2 over the parameters and SignSGD over the puzzle-embedding table.

    Both start at lr 0: the trainer sets the scheduled rate before every step (as the reference).
    """
    opt = AdamAtan2(
        model.parameters(),
        lr=0.0,
        betas=(cfg.beta1, cfg.beta2),
        weight_decay=cfg.weight_decay,
    )
    emb = getattr(model, "puzzle_emb", None)
    emb_opt = None
    if emb is not None:
        emb_opt = CastedSparseEmbeddingSignSGD(
            emb, lr=0.0, weight_decay=cfg.puzzle_emb_weight_decay
        )
    return opt, emb_opt


def num_params(model: nn.Module) -> int:
    """Trainable parameters (the puzzle-embedding table is a buffer and not counted, as the
    reference: 27,275,266 for Sudoku with the defaults)."""
    return sum(p.numel() for p in model.parameters())


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory on CUDA (allocator statistic, no sync); peak RSS of the process on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB
    except (ImportError, OSError):
        return 0
