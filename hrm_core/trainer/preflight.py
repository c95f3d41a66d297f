"""`hrm-train ... preflight=true`: check a run before spending GPU hours on it; exit 0 or 2.

Checks the torchrun environment, the batch split over ranks, the data (built first when
data_build says how), the checkpoint a resume would load against the data and the model, and
runs one real training step on a tiny slice of the first batch, from which it estimates the
memory per device and the step time. Every problem is one line; nothing is written to run_dir.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from hrm_core.config import TrainConfig
from hrm_core.data import PuzzleDataset, TrainLoader, ensure_dataset, reference_total_steps
from hrm_core.model import ACTLossHead, build_model
from hrm_core.trainer import checkpoint as ckpt
from hrm_core.trainer.build import build_optimizers, data_sizes, hrm_config_for, num_params
from hrm_core.trainer.distributed import (
    DistInfo,
    init_distributed,
    pick_device,
    set_cpu_threads,
    torchrun_problems,
)
from hrm_doctor.errors import UserError

TINY_ROWS = 8
"""Examples in the larger preflight step (per rank); the smaller has a quarter."""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)

    def fact(self, name: str, value: str) -> None:
        self.facts.append((name, value))

    def check(self, fn: Any, *args: Any) -> Any:
        """Run one check; a UserError becomes a problem line instead of ending the preflight."""
        try:
            return fn(*args)
        except UserError as exc:
            self.problems.append(str(exc))
            return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def _device_capacity(device: torch.device) -> tuple[int | None, str]:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), f"free on {torch.cuda.get_device_name(device)}"
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages), "available RAM"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def _saved_activation_bytes(fn: Any) -> tuple[Any, int]:
    """Run fn() and count the bytes autograd saves for backward (the activation memory)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, total


def run_preflight(cfg: TrainConfig) -> int:
    """Print the checks (rank 0) and return 0 when everything passes, else 2."""
    report = Report()
    report.problems.extend(torchrun_problems())
    info = report.check(init_distributed, cfg.device) if not report.problems else None
    info = info or DistInfo()
    report.fact("ranks", f"{info.world_size} ({info.backend or 'single process'})")
    report.check(cfg.check_world_size, info.world_size)
    eval_batch = cfg.eval_batch_size or cfg.global_batch_size
    if eval_batch % info.world_size:
        report.problems.append(
            f"config key 'eval_batch_size': {eval_batch} is not divisible by world_size "
            f"({info.world_size})"
        )
    device = report.check(pick_device, cfg.device, info.local_rank)
    if device is not None and device.type == "cpu":
        set_cpu_threads(cfg.cpu_threads, info.local_world_size)
    report.fact("device", str(device))

    data_path = report.check(ensure_dataset, cfg.data_path, cfg.data_build)
    train_set = report.check(PuzzleDataset.open, data_path, "train") if data_path else None
    if data_path and (Path(data_path) / "test").is_dir():
        report.check(PuzzleDataset.open, data_path, "test")
    if train_set is not None and device is not None and not report.problems:
        _model_checks(cfg, info, device, train_set, report)

    problems = report.problems
    if info.distributed:  # every rank's problems, printed once by rank 0
        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, problems, group=info.control_group)
        problems = [f"rank {r}: {p}" for r, ps in enumerate(gathered) for p in ps]
    if info.is_main:
        width = max((len(n) for n, _ in report.facts), default=0)
        print(f"hrm-train preflight: {cfg.run_dir}")
        for name, value in report.facts:
            print(f"  {name:<{width}}  {value}")
        for problem in problems:
            print(f"hrm-train: preflight: {problem}")
        print("preflight: " + ("FAILED" if problems else "ok"))
    return 2 if problems else 0


def _model_checks(
    cfg: TrainConfig, info: DistInfo, device: torch.device, train_set: Any, report: Report
) -> None:
    """Data-vs-config, checkpoint-vs-data, one real step, memory and time estimates."""
    meta = train_set.metadata
    report.fact(
        "data",
        f"{cfg.data_path}: vocab {meta.vocab_size}, seq_len {meta.seq_len}, "
        f"{meta.num_puzzle_identifiers} puzzle ids, {meta.total_groups} groups",
    )
    loader = report.check(
        TrainLoader,
        train_set,
        cfg.global_batch_size,
        cfg.seed,
        info.rank,
        info.world_size,
        cfg.eval_interval,
    )
    if loader is None:
        return
    total_steps = reference_total_steps(meta, cfg.epochs, cfg.global_batch_size)
    report.fact("steps", f"{total_steps} (schedule), {cfg.epochs // cfg.eval_interval} passes")
    if total_steps < 1:
        report.problems.append(
            f"config: epochs={cfg.epochs} of {meta.total_groups} groups make no full global "
            f"batch of {cfg.global_batch_size}; raise epochs or lower global_batch_size"
        )
    local_batch = cfg.global_batch_size // info.world_size
    micro = local_batch // cfg.grad_accum_steps
    model_cfg = hrm_config_for(cfg, meta, micro)
    with torch.device(device):
        model = build_model(cfg.arch.name, model_cfg)
    n_params = num_params(model)
    report.fact("parameters", f"{n_params:,} (+ puzzle-embedding table)")

    resume = report.check(ckpt.resolve_resume, cfg.resume, cfg.run_dir)
    if resume is not None:
        state = ckpt.read_state(resume) or {}
        problem = ckpt.data_mismatch(
            resume, state.get("data", {}), data_sizes(cfg, meta), cfg.data_path
        )
        if problem is None:
            saved = torch.load(resume / ckpt.MODEL_FILE, map_location="cpu", weights_only=True)
            problem = ckpt.shape_mismatch(resume, saved, model.state_dict())
        if problem:
            report.problems.append(problem)
        report.fact("resume", f"{resume} (step {state.get('step')})")

    # Real steps on two tiny slices of the first batch (forward, backward, both optimizers):
    # time and activation bytes are fitted as a + b*rows and extrapolated to the micro-batch.
    loss_head = ACTLossHead(model, cfg.arch.loss_type)
    opt, emb_opt = build_optimizers(model, cfg)
    batch = next(iter(loader)).to_torch(device)
    sizes = sorted({min(TINY_ROWS // 4, micro) or 1, min(TINY_ROWS, micro)})
    measured: dict[int, tuple[float, int]] = {}
    try:
        for rows in sizes:
            tiny = {k: v[:rows] for k, v in batch.items()}
            carry = loss_head.initial_carry(tiny)
            for _ in range(2):  # the first step warms up kernels and allocators
                start = time.perf_counter()
                (carry, loss, _, _, _), saved = _saved_activation_bytes(
                    lambda c=carry, t=tiny: loss_head(c, t)
                )
                (loss / cfg.global_batch_size).backward()
                for o in (opt, emb_opt):
                    if o is not None:
                        o.param_groups[0]["lr"] = 1e-6
                        o.step()
                        o.zero_grad()
                loss_value = float(loss.detach().cpu())  # HOST SYNC: preflight only
                measured[rows] = (time.perf_counter() - start, saved)
            if not math.isfinite(loss_value):
                report.problems.append("preflight step: the loss of the first step is not finite")
    except (RuntimeError, ValueError) as exc:  # e.g. out of memory on the tiny step
        report.problems.append(f"preflight step failed: {str(exc).splitlines()[0]}")
        return

    def extrapolate(index: int) -> float:
        (r1, v1), (r2, v2) = [(r, measured[r][index]) for r in (sizes[0], sizes[-1])]
        slope = (v2 - v1) / (r2 - r1) if r2 > r1 else v2 / r2
        return max(v2, v2 + slope * (micro - r2))

    # Memory per device: weights, gradients and Adam moments (16 bytes per parameter), the
    # embedding table, the ACT carries, and the activations saved for backward.
    table = model.puzzle_emb.weights.numel() * 4 if model.puzzle_emb is not None else 0
    rows = sizes[-1]
    carry_bytes = sum(
        t.numel() * t.element_size() for t in (carry.inner_carry.z_H, carry.inner_carry.z_L)
    )
    activation_bytes = extrapolate(1)
    estimate = 16 * n_params + table + carry_bytes * local_batch / rows + activation_bytes
    capacity, what = _device_capacity(device)
    report.fact(
        "memory/device",
        f"~{_gib(estimate)} (weights+grads+Adam {_gib(16 * n_params)}, embedding table "
        f"{_gib(table)}, activations {_gib(activation_bytes)})"
        + (f"; {_gib(capacity)} {what}" if capacity else ""),
    )
    if capacity is not None and estimate > capacity:
        report.problems.append(
            f"memory: the estimate ~{_gib(estimate)} per device exceeds the {_gib(capacity)} "
            f"{what}; lower global_batch_size, raise grad_accum_steps or use more ranks"
        )
    step_s = extrapolate(0) * cfg.grad_accum_steps
    report.fact(
        "step time",
        f"~{step_s:.3g} s (from steps of {', '.join(map(str, sizes))} examples, "
        f"{measured[rows][0] * 1e3:.1f} ms for {rows}); "
        f"~{step_s * total_steps / 3600:.2g} h for {total_steps} steps",
    )
