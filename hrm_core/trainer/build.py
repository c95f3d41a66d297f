"""What the recipe sets up from a TrainConfig: the data and its loaders, the model, its loss
head and optimizers, the probe, the seeds (for training and preflight)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrm_core.config import TrainConfig
from hrm_core.data import DatasetMetadata
from hrm_core.model import HRMConfig, model_config
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD, WeightEMA


def hrm_config_for(cfg: TrainConfig, meta: DatasetMetadata, micro_batch: int) -> HRMConfig:
    """The model's config (an HRMConfig, or a TRMConfig for arch=trm): the `arch.*` keys plus
    the sizes that come from the data."""
    arch = cfg.arch.model_dump()
    arch.pop("name")
    forward_dtype = "auto" if cfg.forward_dtype == "auto" else cfg.forward_dtype
    return model_config(
        cfg.arch.name,
        {
            "arch": {**arch, "forward_dtype": forward_dtype},
            "vocab_size": meta.vocab_size,
            "seq_len": meta.seq_len,
            "num_puzzle_identifiers": meta.num_puzzle_identifiers,
            "batch_size": micro_batch,
        },
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


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainData:
    """The data of a run: the training set and its loader (this rank's share), the test set's
    loader when there is one, and the lengths of the schedule."""

    path: Path
    meta: DatasetMetadata
    loader: Any  # TrainLoader
    eval_loader: Any  # EvalLoader | None
    total_steps: int  # the schedule's length (the reference's formula)
    num_passes: int  # evaluations (one after each pass of eval_interval epochs)
    last_step: int  # where this session stops (max_steps or the end)
    local_batch: int
    micro_batch: int
    arc: Any = None  # ArcScoring of the test set, when it is scored as ARC (eval_arc)


def open_data(cfg: TrainConfig, info: Any) -> TrainData:
    """Rank 0 builds the data when it is missing (experiment=smoke), then every rank opens it."""
    from hrm_core.data import (
        EvalLoader,
        PuzzleDataset,
        TrainLoader,
        ensure_dataset,
        open_splits,
        reference_total_steps,
    )
    from hrm_core.trainer.distributed import on_main

    on_main(info, lambda: str(ensure_dataset(cfg.data_path, cfg.data_build)))
    path = Path(ensure_dataset(cfg.data_path, cfg.data_build))  # built: opens it
    train_set = PuzzleDataset.open(path, "train")
    meta = train_set.metadata
    local_batch = cfg.global_batch_size // info.world_size
    loader = TrainLoader(
        train_set,
        cfg.global_batch_size,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
        epochs_per_pass=cfg.eval_interval,  # the reference evaluates after each pass
        sampling=cfg.data_sampling,
    )
    eval_loader, arc = None, None
    if (path / "test" / "dataset.json").is_file():
        test_set = open_splits(path)["test"]  # also checks train and test agree on sizes
        arc = make_arc_scoring(cfg, test_set)
        eval_loader = EvalLoader(
            test_set,
            cfg.eval_batch_size or cfg.global_batch_size,
            rank=info.rank,
            world_size=info.world_size,
            max_examples=cfg.eval_max_examples,
        )
    total_steps = reference_total_steps(meta, cfg.epochs, cfg.global_batch_size)
    return TrainData(
        path=path,
        meta=meta,
        loader=loader,
        eval_loader=eval_loader,
        total_steps=total_steps,
        num_passes=cfg.epochs // cfg.eval_interval,
        last_step=min(total_steps, cfg.max_steps or total_steps),
        local_batch=local_batch,
        micro_batch=local_batch // cfg.grad_accum_steps,
        arc=arc,
    )


def make_arc_scoring(cfg: TrainConfig, test_set: Any) -> Any:
    """ArcScoring of the test set when eval_arc says so (null: when it looks like ARC)."""
    from hrm_core.trainer.arc_scoring import ArcScoring, looks_like_arc

    wanted = looks_like_arc(test_set) if cfg.eval_arc is None else cfg.eval_arc
    return ArcScoring(test_set, partial=cfg.eval_max_examples is not None) if wanted else None


@dataclass
class Network:
    """The model, its loss head (compiled when asked), both optimizers and the flat gradients."""

    model: nn.Module
    loss_head: nn.Module
    step_fn: Any  # the loss head, or its torch.compile
    opt: AdamAtan2
    emb_opt: CastedSparseEmbeddingSignSGD | None
    grads: Any  # FlatGradients
    ema: WeightEMA | None = None  # ema=true: the weights' moving average, evaluated

    def eval_weights(self) -> Any:
        """Context: the weights evaluation uses (the moving average when there is one)."""
        import contextlib

        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    @property
    def emb(self) -> Any:
        return getattr(self.model, "puzzle_emb", None)

    def emb_grad(self) -> torch.Tensor | None:
        emb = self.emb
        return None if emb is None else emb.local_weights.grad


def build_network(cfg: TrainConfig, data: TrainData, info: Any, device: torch.device) -> Network:
    """The model (identical weights on every rank), its loss head and optimizers; gradients
    live in one flat buffer."""
    from hrm_core.model import ACTLossHead, build_model
    from hrm_core.trainer.distributed import broadcast_module_
    from hrm_core.trainer.gradients import FlatGradients

    with torch.device(device):
        model = build_model(cfg.arch.name, hrm_config_for(cfg, data.meta, data.micro_batch))
    broadcast_module_(info, model)  # identical weights on every rank (as the reference)
    loss_head = ACTLossHead(model, cfg.arch.loss_type)
    step_fn = torch.compile(loss_head, dynamic=False) if cfg.compile else loss_head
    opt, emb_opt = build_optimizers(model, cfg)
    ema = WeightEMA(model, cfg.ema_rate) if cfg.ema else None
    grads = FlatGradients(model.parameters())
    return Network(model, loss_head, step_fn, opt, emb_opt, grads, ema)


TRAINER_METRICS = ("grad/norm", "nonfinite/count", "sys/mem_peak_bytes")
"""Logged by the trainer, which has them anyway (the norm to clip, the count to skip a
non-finite step, the peak memory with its timings, also with the probe off): the probe's
quantities of the same names are left out of hrm-train (one producer per metric); they serve
trainers that do not compute them (`Probe.attach`, docs/interop.md)."""


def make_probe(cfg: TrainConfig, net: Network) -> Any:
    """The hrm-doctor probe over this model and its optimizers, or None when it is off."""
    if not cfg.probe.enabled:
        return None
    from hrm_core.probe import Probe

    return Probe(
        model=net.model,
        optimizers={"model": net.opt, "puzzle_emb": net.emb_opt, "ema": net.ema},
        every=cfg.probe.every,
        tensor_every=cfg.probe.tensor_every,
        halt_max_steps=cfg.arch.halt_max_steps,
        tier=cfg.probe.tier,
        exclude=TRAINER_METRICS,
    )


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
