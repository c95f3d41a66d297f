"""Evaluation: every test example runs exactly halt_max_steps ACT segments (HRM_NOTES, "ACT").

Metrics per set (reduced over ranks): eval/SET/accuracy (token), eval/SET/exact_accuracy (whole
puzzle), eval/SET/q_halt_accuracy, eval/SET/lm_loss and eval/SET/q_halt_loss (means per
sequence, as the reference's eval), eval/SET/steps and eval/SET/seconds; with ARC scoring also
eval/arc/pass@1 and eval/arc/pass@2 (arc_scoring). One all-reduce and one host sync per set,
none per batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hrm_core.data import Batch, EvalLoader
from hrm_core.trainer.arc_scoring import ArcScoring, last_segment_outputs
from hrm_core.trainer.distributed import DistInfo

SUMMED = (
    "count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss", "q_halt_loss"
)  # fmt: skip
"""The loss head's metrics that are sums over the sequences that halted (all of them, here)."""


def _by_set(loader: EvalLoader) -> Iterator[tuple[str, list[Batch]]]:
    current, batches = None, []
    for batch in loader:
        if current is not None and batch.set_name != current:
            yield current, batches
            batches = []
        current = batch.set_name
        batches.append(batch)
    if current is not None:
        yield current, batches


@torch.inference_mode()
def evaluate(
    loss_head: nn.Module,
    loader: EvalLoader,
    device: torch.device,
    info: DistInfo,
    halt_max_steps: int,
    arc: ArcScoring | None = None,
    arc_out: Path | None = None,
) -> dict[str, float]:
    """Run the whole evaluation; returns host floats named eval/SET/* (and eval/arc/* on rank 0
    when `arc` scores it; its submission JSON goes to `arc_out`)."""
    was_training = loss_head.training
    loss_head.eval()
    results: dict[str, float] = {}
    if arc is not None:
        arc.reset()
    try:
        for set_name, batches in _by_set(loader):
            start = time.perf_counter()
            sums = torch.zeros(len(SUMMED), dtype=torch.float64, device=device)  # (7,)
            kept: list[tuple[torch.Tensor, torch.Tensor]] = []
            keys = ("logits", "q_halt_logits") if arc is not None else ()
            for batch in batches:
                tensors = batch.to_torch(device)
                carry = loss_head.initial_carry(tensors)
                for segment in range(halt_max_steps):  # eval: every sequence runs all segments
                    last = segment == halt_max_steps - 1
                    carry, _, metrics, outputs, _ = loss_head(
                        carry, tensors, return_keys=keys if last else ()
                    )
                sums += torch.stack([metrics[k].to(torch.float64) for k in SUMMED])
                if arc is not None:
                    kept.append(last_segment_outputs(outputs))  # (B, seq) uint8, (B,) fp64
            if info.distributed:
                dist.all_reduce(sums)
            host = sums.cpu().tolist()  # HOST SYNC: once per evaluated set
            if arc is not None and kept:
                rows = np.concatenate([b.example_indices for b in batches])
                preds = torch.cat([p for p, _ in kept]).cpu().numpy()  # with the sync above
                q_halt = torch.cat([q for _, q in kept]).cpu().numpy()
                real = rows >= 0
                arc.add(set_name, rows[real], preds[real], q_halt[real])
            seconds = time.perf_counter() - start
            values = dict(zip(SUMMED, host, strict=True))
            count = max(values["count"], 1.0)
            prefix = f"eval/{set_name}"
            results[f"{prefix}/accuracy"] = values["accuracy"] / count
            results[f"{prefix}/exact_accuracy"] = values["exact_accuracy"] / count
            results[f"{prefix}/q_halt_accuracy"] = values["q_halt_accuracy"] / count
            results[f"{prefix}/steps"] = values["steps"] / count
            results[f"{prefix}/lm_loss"] = values["lm_loss"] / count
            results[f"{prefix}/q_halt_loss"] = values["q_halt_loss"] / count
            results[f"{prefix}/count"] = values["count"]
            results[f"{prefix}/seconds"] = seconds
        if arc is not None:
            results.update(arc.result(info, arc_out))
    finally:
        loss_head.train(was_training)
    return results


def format_eval(step: int, results: dict[str, float]) -> str:
    """The console line of an evaluation."""
    sets = sorted({k.split("/")[1] for k in results} - {"arc"})
    parts = []
    for s in sets:
        parts.append(
            f"{s}: acc {results[f'eval/{s}/accuracy']:.4f} exact "
            f"{results[f'eval/{s}/exact_accuracy']:.4f} ({results[f'eval/{s}/seconds']:.1f} s)"
        )
    if "eval/arc/pass@2" in results:
        parts.append(
            f"ARC pass@1 {results['eval/arc/pass@1']:.4f} pass@2 {results['eval/arc/pass@2']:.4f}"
            f" over {results['eval/arc/tasks']:.0f} tasks"
        )
    return f"eval at step {step}: " + "; ".join(parts)
