"""Evaluation: every test example runs exactly halt_max_steps ACT segments (HRM_NOTES, "ACT").

Metrics per set (reduced over ranks): eval/SET/accuracy (token), eval/SET/exact_accuracy (whole
puzzle), eval/SET/q_halt_accuracy, eval/SET/lm_loss (mean per sequence), eval/SET/steps and
eval/SET/seconds. One all-reduce and one host sync per set, none per batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from hrm_core.data import Batch, EvalLoader
from hrm_core.trainer.distributed import DistInfo

SUMMED = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "lm_loss")
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
) -> dict[str, float]:
    """Run the whole evaluation; returns host floats named eval/SET/*."""
    was_training = loss_head.training
    loss_head.eval()
    results: dict[str, float] = {}
    try:
        for set_name, batches in _by_set(loader):
            start = time.perf_counter()
            sums = torch.zeros(len(SUMMED), dtype=torch.float64, device=device)  # (6,)
            for batch in batches:
                tensors = batch.to_torch(device)
                carry = loss_head.initial_carry(tensors)
                for _ in range(halt_max_steps):  # eval: every sequence runs all segments
                    carry, _, metrics, _, _ = loss_head(carry, tensors, return_keys=())
                sums += torch.stack([metrics[k].to(torch.float64) for k in SUMMED])
            if info.distributed:
                dist.all_reduce(sums)
            host = sums.cpu().tolist()  # HOST SYNC: once per evaluated set
            seconds = time.perf_counter() - start
            values = dict(zip(SUMMED, host, strict=True))
            count = max(values["count"], 1.0)
            prefix = f"eval/{set_name}"
            results[f"{prefix}/accuracy"] = values["accuracy"] / count
            results[f"{prefix}/exact_accuracy"] = values["exact_accuracy"] / count
            results[f"{prefix}/q_halt_accuracy"] = values["q_halt_accuracy"] / count
            results[f"{prefix}/steps"] = values["steps"] / count
            results[f"{prefix}/lm_loss"] = values["lm_loss"] / count
            results[f"{prefix}/count"] = values["count"]
            results[f"{prefix}/seconds"] = seconds
    finally:
        loss_head.train(was_training)
    return results


def format_eval(step: int, results: dict[str, float]) -> str:
    """The console line of an evaluation."""
    sets = sorted({k.split("/")[1] for k in results})
    parts = []
    for s in sets:
        parts.append(
            f"{s}: acc {results[f'eval/{s}/accuracy']:.4f} exact "
            f"{results[f'eval/{s}/exact_accuracy']:.4f} ({results[f'eval/{s}/seconds']:.1f} s)"
        )
    return f"eval at step {step}: " + "; ".join(parts)
