"""hrm-train: the HRM-ACT training recipe, top to bottom (nanoGPT style).

    hrm-train experiment=smoke                                  # a tiny HRM on the CPU, < 1 min
    torchrun --nproc_per_node=8 hrm-train task=sudoku_extreme_1k # data-parallel (nccl / gloo)
    hrm-train -m lr=1e-4,3e-4 experiment=smoke run_dir=runs/sweep  # one run per job: sweep/0, /1
    hrm-train experiment=smoke preflight=true                   # check everything, exit 0 or 2

Sections: 0. entry point (argv, validation, Hydra); 1. processes, device, seeds; 2. data;
3. model and optimizers; 4. resume; 5. telemetry, W&B, control channel, console, probe;
6. the training loop (one ACT segment per optimizer step, the carry crossing batches: halted
slots take the next batch's examples); 7. evaluation, checkpoints and the end.

Every host-device sync is commented `HOST SYNC`; there is one per step (plus one per evaluated
set and per checkpoint). Behaviour follows ../shared/HRM_NOTES.md; docs/training.md describes
the run directory, resume, non-finite steps and multirun; docs/control.md the live patches.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

# =================================================================================================
# 0. Entry point: argv -> validated overrides -> the Hydra app -> one job per run
# =================================================================================================


def main(argv: list[str] | None = None) -> int:
    """The `hrm-train` console script (also `python -m hrm_core.pretrain`); returns the exit code.

    The overrides are validated before Hydra runs (a bad key or value is one line and exit 2),
    and under torchrun rank 0's run_dir is broadcast first (see hrm_core/trainer/entry.py).
    """
    from hrm_core.trainer.entry import run_hydra_app

    return run_hydra_app(sys.argv[1:] if argv is None else argv, job)


def job(cfg: Any) -> int:
    """One run, from a validated TrainConfig: only the checks (preflight=true), or training."""
    if cfg.preflight:
        from hrm_core.trainer.preflight import run_preflight

        return run_preflight(cfg)
    return train(cfg)


# =================================================================================================
# The recipe
# =================================================================================================


def train(cfg: Any) -> int:
    """Train (or continue) the run described by a validated TrainConfig; returns an exit code."""
    import torch

    from hrm_core.data import (
        EvalLoader,
        PuzzleDataset,
        TrainLoader,
        ensure_dataset,
        reference_total_steps,
    )
    from hrm_core.model import ACTCarry, ACTLossHead, build_model
    from hrm_core.optim import lr_at, set_lr
    from hrm_core.trainer import checkpoint as ckpt
    from hrm_core.trainer.build import (
        build_optimizers,
        data_sizes,
        hrm_config_for,
        num_params,
        peak_memory_bytes,
    )
    from hrm_core.trainer.console import Console
    from hrm_core.trainer.control import (
        ControlChannel,
        HotParams,
        Request,
        apply_request,
        replay_plan,
        restart_overrides,
    )
    from hrm_core.trainer.distributed import (
        CommTimer,
        any_flags,
        barrier,
        broadcast_json,
        broadcast_module_,
        init_distributed,
        on_main,
        pick_device,
        set_cpu_threads,
    )
    from hrm_core.trainer.evaluation import evaluate
    from hrm_core.trainer.gradients import FlatGradients
    from hrm_core.trainer.host import load_metrics_to_host
    from hrm_core.trainer.steplog import SUMS, StepLog, train_means
    from hrm_core.trainer.stop import StopSignal
    from hrm_core.trainer.wandb_logger import WandbLogger
    from hrm_doctor import RunWriter

    # ---------------------------------------------------------------------------------------------
    # 1. Processes, device, threads, seeds
    # ---------------------------------------------------------------------------------------------
    info = init_distributed(cfg.device)
    cfg.check_world_size(info.world_size)
    device = pick_device(cfg.device, info.local_rank)
    if device.type == "cpu":
        set_cpu_threads(cfg.cpu_threads, info.local_world_size)
    seed_everything(cfg.seed)  # the same model init on every rank (rank 0's is broadcast anyway)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------------------------------------
    # 2. Data: rank 0 builds it when missing (experiment=smoke), then every rank opens it
    # ---------------------------------------------------------------------------------------------
    on_main(info, lambda: str(ensure_dataset(cfg.data_path, cfg.data_build)))
    data_path = ensure_dataset(cfg.data_path, cfg.data_build)  # built: opens it
    train_set = PuzzleDataset.open(data_path, "train")
    meta = train_set.metadata
    has_test = (Path(data_path) / "test" / "dataset.json").is_file()
    local_batch = cfg.global_batch_size // info.world_size
    micro_batch = local_batch // cfg.grad_accum_steps
    loader = TrainLoader(
        train_set,
        cfg.global_batch_size,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
        epochs_per_pass=cfg.eval_interval,  # the reference evaluates after each pass
    )
    eval_loader = None
    if has_test:
        from hrm_core.data import open_splits

        test_set = open_splits(data_path)["test"]  # also checks train and test agree on sizes
        eval_loader = EvalLoader(
            test_set,
            cfg.eval_batch_size or cfg.global_batch_size,
            rank=info.rank,
            world_size=info.world_size,
            max_examples=cfg.eval_max_examples,
        )
    total_steps = reference_total_steps(meta, cfg.epochs, cfg.global_batch_size)  # schedule length
    num_passes = cfg.epochs // cfg.eval_interval
    last_step = min(total_steps, cfg.max_steps or total_steps)

    # ---------------------------------------------------------------------------------------------
    # 3. Model, loss head, optimizers; gradients live in one flat buffer
    # ---------------------------------------------------------------------------------------------
    model_config = hrm_config_for(cfg, meta, micro_batch)
    with torch.device(device):
        model = build_model(cfg.arch.name, model_config)
    broadcast_module_(info, model)  # identical weights on every rank (as the reference)
    loss_head = ACTLossHead(model, cfg.arch.loss_type)
    step_fn = torch.compile(loss_head, dynamic=False) if cfg.compile else loss_head
    opt, emb_opt = build_optimizers(model, cfg)
    grads = FlatGradients(model.parameters())
    emb = model.puzzle_emb
    if info.rank:  # a distinct ACT-exploration stream per rank
        seed_everything(cfg.seed + 1_000_003 * info.rank)

    # ---------------------------------------------------------------------------------------------
    # 4. Resume: weights, optimizer moments, schedule, RNG, ACT carry, data position, patches
    # ---------------------------------------------------------------------------------------------
    config_dict = cfg.model_dump(mode="json")  # the resolved config, saved and logged
    hot = HotParams.from_config(cfg)
    step = 0
    carries: list[ACTCarry] | None = None
    skips: list[dict[str, int]] = []
    replay: dict[int, dict[str, float | None]] = {}  # step -> hot values patched at that step
    resume_path = on_main(info, lambda: _str_or_none(ckpt.resolve_resume(cfg.resume, run_dir)))
    if resume_path is not None:
        loaded = ckpt.load_checkpoint(Path(resume_path), info.rank, device)
        state = loaded.state
        if state.get("finished") and loaded.step >= last_step:
            if info.is_main:
                print(f"hrm-train: {resume_path} is the end of a finished run (step {loaded.step})")
            return 0
        problem = ckpt.data_mismatch(
            loaded.path, state.get("data", {}), data_sizes(cfg, meta), str(data_path)
        ) or ckpt.shape_mismatch(loaded.path, loaded.model, model.state_dict())
        if problem:
            raise UserError(problem)
        model.load_state_dict(loaded.model)
        opt.load_state_dict(loaded.optimizers["model"])
        if emb_opt is not None and loaded.optimizers.get("puzzle_emb") is not None:
            emb_opt.load_state_dict(loaded.optimizers["puzzle_emb"])
        step = loaded.step
        skips = list(state.get("skips", []))
        overridden = restart_overrides(state.get("config", {}), config_dict)
        hot.update({k: v for k, v in state.get("hot", {}).items() if k not in overridden})
        rank_state = loaded.rank_state
        same_layout = (
            rank_state is not None
            and int(state["world_size"]) == info.world_size
            and rank_state.get("micro_batch") == micro_batch
        )
        loader.load_state_dict(rank_state["loader"] if rank_state else state["loader"])
        if same_layout:
            carries = (
                [ACTCarry.from_dict(c) for c in rank_state["carry"]]
                if rank_state["carry"]
                else None
            )
            ckpt.restore_rng(rank_state["rng"], device)
        elif info.is_main:
            print(
                "hrm-train: world size or batch layout changed since the checkpoint: ACT carry "
                "restarts and RNG is reseeded (the resume is not bit-exact)"
            )
        if not same_layout:
            seed_everything(cfg.seed + 1_000_003 * info.rank + step)
        if info.is_main:
            ckpt.supersede_after(run_dir, step)  # a rollback: newer checkpoints are another branch
        acks = ControlChannel(run_dir).applied_after(step) if info.is_main else None
        replay = replay_plan(broadcast_json(info, acks), overridden)
    _apply_hot(hot, opt, emb_opt, model)

    # Skip data after a rollback (the PaLM recipe against loss spikes), once per branch.
    if cfg.skip_batches and not any(s["batches"] == cfg.skip_batches for s in skips):
        batches = iter(loader)
        for _ in range(cfg.skip_batches):
            next(batches)  # the position moves on; no optimizer step, the schedule stays
        skips.append({"from_step": step, "batches": cfg.skip_batches})

    # ---------------------------------------------------------------------------------------------
    # 5. Telemetry (every rank, one run dir), W&B and console (rank 0), control channel, probe
    # ---------------------------------------------------------------------------------------------
    writer = RunWriter(
        run_dir,
        config=config_dict,
        rank=info.rank,
        world_size=info.world_size,
        meta={"device": str(device), "total_steps": total_steps},
        resume_from_step=step + 1,  # steps after the checkpoint logged before are superseded
        program="hrm-train",
    )
    n_params = num_params(model)
    writer.set_meta(num_params=n_params)
    wandb = WandbLogger(
        cfg.wandb.mode,
        cfg.wandb.project,
        cfg.wandb.name,
        run_dir,
        config_dict,
        run_id=None,
        active=info.is_main,
    )
    wandb.set_num_params(n_params)
    console = Console(info.is_main, last_step)
    log = StepLog(writer, wandb, console)
    control = ControlChannel(run_dir, active=info.is_main)
    probe = None
    if cfg.probe.enabled:
        probe = _make_probe(cfg, model, opt, emb_opt)
    metrics_to_host = load_metrics_to_host()
    comm = CommTimer(device)
    stop = StopSignal()
    console.note(
        f"hrm-train: {run_dir} | {info.world_size} rank(s) on {device} | {n_params:,} params | "
        f"steps {step}->{last_step} of {total_steps} | batch {cfg.global_batch_size}"
        + (f" | resumed from {resume_path}" if resume_path else "")
    )

    # ---------------------------------------------------------------------------------------------
    # 6. + 7. The loop, with evaluation and checkpoints
    # ---------------------------------------------------------------------------------------------
    def emb_grad() -> torch.Tensor | None:
        return None if emb is None else emb.local_weights.grad

    def probe_vector(probe_metrics: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
        names = sorted(k for k, v in probe_metrics.items() if _is_scalar_tensor(v))
        if not names:
            return [], torch.zeros(0, dtype=torch.float64, device=device)
        return names, torch.stack([probe_metrics[k].to(torch.float64) for k in names])

    def flush_log(collective: bool = True) -> None:
        """Log the held step: bring its probe metrics to the host (and reduce them)."""
        nonlocal probe_pending
        if log.pending is None:
            return
        device_metrics = dict(probe_pending)
        names, vector = probe_vector(probe_pending)
        reduce_probe = collective and info.distributed and probe_keys_agree and names
        if reduce_probe:
            reduced_vec = vector.clone()
            torch.distributed.all_reduce(reduced_vec)
            device_metrics["_trainer/probe_sum"] = reduced_vec
        host = metrics_to_host(device_metrics)  # HOST SYNC (end of a pass, checkpoint, the end)
        probe_sum = host.pop("_trainer/probe_sum", None)
        log.complete(host, _mean_over_ranks(host, names, probe_sum, info.world_size))
        probe_pending = {}

    def save(finished: bool = False) -> None:
        nonlocal last_saved
        flush_log()
        if last_saved == step and not finished:
            return
        writer.flush()  # the telemetry up to this step is on disk before the checkpoint is
        ckpt.save_checkpoint(
            run_dir,
            step,
            rank=info.rank,
            world_size=info.world_size,
            barrier=lambda: barrier(info),
            state=lambda: {
                "finished": finished,
                "total_steps": total_steps,
                "passes_evaluated": passes_evaluated,
                "hot": hot.values,
                "skips": skips,
                "loader": loader.state_dict(),
                "data": data_sizes(cfg, meta),
                "config": config_dict,
            },
            model=model.state_dict,
            optimizers=lambda: {
                "model": opt.state_dict(),
                "puzzle_emb": None if emb_opt is None else emb_opt.state_dict(),
            },
            rank_state={
                "rng": ckpt.capture_rng(device),
                "carry": None if carries is None else [c.to_dict() for c in carries],
                "loader": loader.state_dict(),
                "micro_batch": micro_batch,
            },
        )
        last_saved = step
        if info.is_main:
            ckpt.prune(run_dir, cfg.keep_last)
            console.note(f"checkpoint: step {step} -> {run_dir / ckpt.CHECKPOINTS_DIR}")

    def run_eval() -> None:
        nonlocal passes_evaluated
        if eval_loader is not None:
            results = evaluate(loss_head, eval_loader, device, info, cfg.arch.halt_max_steps)
            log.add(results, step)
            console.note(_format_eval(step, results))
        passes_evaluated = loader.position.pass_index

    def exchange() -> list[int]:
        """The step boundary's host-side decision, identical on every rank: rank 0's new patch
        requests (applied from the next step) and any rank's stop signal (one tiny gloo
        all-reduce per step; a broadcast only when there are requests)."""
        nonlocal decided, probe_keys_agree
        requests = control.poll()  # rank 0: one os.stat when nothing changed
        n_probe = sum(1 for v in probe_pending.values() if _is_scalar_tensor(v))
        flags = any_flags(info, [int(bool(requests)), stop.code, n_probe, -n_probe])
        probe_keys_agree = flags[2] == -flags[3]
        if flags[0]:
            shared = broadcast_json(info, [r.to_json() for r in requests])
            decided = [Request.from_json(r) for r in shared]
        return flags

    probe_pending: dict[str, torch.Tensor] = {}  # the probe's metrics of the held step
    probe_keys_agree = True  # every rank's probe returned the same number of scalars
    decided: list[Request] = []  # patches decided at the last step boundary
    doctor_stops: list[Request] = []  # stop requests of the doctor, acted on at a boundary
    passes_evaluated = loader.position.pass_index
    last_saved = step if resume_path is not None else -1
    finished = step >= last_step or loader.position.pass_index >= num_passes
    exchange()  # requests already waiting apply from the first step
    t_last = time.perf_counter()
    loss_scale = 1.0 / cfg.global_batch_size  # gradients SUM over ranks -> the global mean
    exit_code = 0
    status = "finished"  # or "paused" (max_steps), "stopped" (a signal), "failed"
    reached_end = False  # the schedule's last step (total_steps) has run

    try:
        while not finished:
            pass_index = loader.position.pass_index
            for batch in loader.iter_pass():
                step += 1
                # 6.1 Live patches decided at the last boundary (same on every rank), replays
                for request in decided:
                    if request.stop:
                        doctor_stops.append(request)  # acted on at this step's boundary
                    else:
                        console.note(apply_request(request, hot, control, step))
                decided = []
                if step in replay:
                    hot.update(replay.pop(step))
                _apply_hot(hot, opt, emb_opt, model)
                lr = lr_at(step, hot["lr"], cfg.lr_warmup_steps, total_steps, cfg.lr_min_ratio)
                emb_lr = lr_at(
                    step, hot["puzzle_emb_lr"], cfg.lr_warmup_steps, total_steps, cfg.lr_min_ratio
                )
                set_lr(opt, lr)
                if emb_opt is not None:
                    set_lr(emb_opt, emb_lr)

                # 6.2 The batch, on the device
                tensors = batch.to_torch(device)  # (local_batch, seq_len) each
                data_wait_s = time.perf_counter() - t_last
                comm.reset()

                # 6.3 One ACT segment per micro-batch: forward, loss, backward. Each micro-batch
                # has its own carry; its halted slots take this batch's examples.
                grads.zero_()
                if emb_opt is not None:
                    emb_opt.zero_grad()
                if carries is None:
                    carries = [
                        loss_head.initial_carry(_rows(tensors, i, micro_batch))
                        for i in range(cfg.grad_accum_steps)
                    ]
                sums = None
                losses: list[torch.Tensor] = []
                emb_parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
                outputs_parts: list[dict[str, torch.Tensor]] = []
                for i in range(cfg.grad_accum_steps):
                    micro = _rows(tensors, i, micro_batch)  # (micro_batch, seq_len) each
                    carries[i], loss, metrics, outputs, _ = step_fn(carries[i], micro)
                    (loss * loss_scale).backward()
                    losses.append(loss.detach())
                    part = torch.stack(
                        [
                            metrics.get(k, torch.zeros((), device=device)).to(torch.float64)
                            for k in SUMS[:-1]
                        ]
                        + [(~torch.isfinite(loss)).to(torch.float64)]
                    )  # (9,): the loss head's sums and whether this loss is non-finite
                    sums = part if sums is None else sums + part
                    outputs_parts.append(outputs)
                    if emb is not None and cfg.grad_accum_steps > 1 and emb_grad() is not None:
                        emb_parts.append((emb.local_weights.detach(), emb_grad(), emb.local_ids))
                if emb_parts:  # the SignSGD step reads one leaf: join the micro-batches' rows
                    _join_embedding_rows(emb, emb_parts)

                # 6.4 Gradients: non-finite count (this rank's own), all-reduce, global norm
                sums[-1] += grads.nonfinite_count()
                if emb_grad() is not None:
                    sums[-1] += torch.isfinite(emb_grad()).logical_not().sum()
                if info.distributed:
                    with comm:
                        grads.all_reduce_()
                grad_norm = grads.norm()  # (,) before clipping
                if probe is not None:
                    probe.before_step(step, loss=torch.stack(losses).sum())
                names, vector = probe_vector(probe_pending)  # the held step's probe scalars
                # 0-d entries come back as full-precision floats (1-D ones as float32 arrays).
                device_metrics: dict[str, Any] = {
                    **{f"_local/{k}": sums[j] for j, k in enumerate(SUMS)},
                    "_trainer/grad_norm": grad_norm,
                    **probe_pending,
                }
                if info.distributed:
                    reduced = torch.cat([sums, vector]) if probe_keys_agree else sums.clone()
                    with comm:
                        torch.distributed.all_reduce(reduced)
                    device_metrics.update({f"_global/{j}": v for j, v in enumerate(reduced)})

                # 6.5 THE host sync of the step: this step's sums and grad norm, the held step's
                # probe metrics; everything else stays on the device.
                host = metrics_to_host(device_metrics)  # HOST SYNC
                local_sums = {k: float(host.pop(f"_local/{k}")) for k in SUMS}
                global_all = [
                    float(host.pop(f"_global/{j}"))
                    for j in range(len(SUMS) + len(names))
                    if f"_global/{j}" in host
                ]
                global_sums = (
                    dict(zip(SUMS, global_all, strict=False)) if global_all else local_sums
                )
                host_grad_norm = float(host.pop("_trainer/grad_norm"))
                probe_sum = None
                if len(global_all) > len(SUMS):
                    probe_sum = global_all[len(SUMS) :]
                log.complete(host, _mean_over_ranks(host, names, probe_sum, info.world_size))
                probe_pending = {}

                skip_update = global_sums["nonfinite"] > 0 or not _finite(host_grad_norm)
                scalars = {
                    "train/lr": lr,
                    "train/puzzle_emb_lr": emb_lr,
                    "grad/norm": host_grad_norm,
                    "nonfinite/skipped": float(skip_update),
                }
                log.hold(
                    step,
                    {**train_means(local_sums, local_batch), **scalars},
                    {**train_means(global_sums, cfg.global_batch_size), **scalars},
                )

                # 6.6 The update: clip, Adam-atan2 and SignSGD; skipped when anything is not
                # finite (weights, moments and the embedding table stay as they were).
                if not skip_update:
                    clip = hot["grad_clip_norm"]
                    if clip is not None:
                        grads.clip_(clip, grad_norm)
                    opt.step()
                    if emb_opt is not None:
                        emb_opt.step()
                elif info.is_main:
                    console.note(f"step {step}: non-finite loss or gradient; update skipped")

                # 6.7 The probe: its post-step quantities, logged with this step at the next sync
                if probe is not None:
                    probe.after_step(step)
                    outputs = _join_outputs(outputs_parts)
                    carry = carries[0] if len(carries) == 1 else _join_carries(carries)
                    probe_pending = probe.collect(step, outputs=outputs, carry=carry)

                # 6.8 Step boundary: timings; new patches and stop requests, decided together
                t_now = time.perf_counter()
                step_time_s = t_now - t_last
                t_last = t_now
                log.add(
                    {
                        "sys/step_time_s": step_time_s,
                        "sys/samples_per_s": cfg.global_batch_size / max(step_time_s, 1e-9),
                        "sys/data_wait_s": data_wait_s,
                        "sys/comm_s": comm.seconds(),
                        "sys/mem_peak_bytes": float(peak_memory_bytes(device)),
                    }
                )
                flags = exchange()
                pass_ended = loader.position.pass_index != pass_index
                stops = doctor_stops + [r for r in decided if r.stop]  # a hopeless trial
                doctor_stops = []
                for request in stops:
                    console.note(apply_request(request, hot, control, step))
                decided = [r for r in decided if not r.stop]
                if flags[1] or stops or step >= last_step:  # asked to stop, max_steps, the end
                    finished = True
                    reached_end = step >= total_steps and not stops
                    if stops:
                        status = "stopped"
                    elif flags[1]:
                        status, exit_code = "stopped", (0 if flags[1] == 143 else flags[1])
                    elif not reached_end:
                        status = "paused"  # max_steps: resume=auto continues the same schedule
                    if not pass_ended and not reached_end:
                        save()  # mid-pass stop: checkpoint now (a pass end evaluates first)
                    break
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not pass_ended:
                    save()
                    t_last = time.perf_counter()

            # 7. End of a pass (eval_interval epochs) or of the schedule: evaluate, checkpoint
            pass_ended = loader.position.pass_index != pass_index
            if pass_ended or reached_end:
                run_eval()
                done = step >= total_steps or loader.position.pass_index >= num_passes
                save(finished=done)
                finished = finished or done
                t_last = time.perf_counter()
        flush_log()
    except BaseException:
        status = "failed"
        raise
    finally:
        stop.restore()
        with contextlib.suppress(Exception):  # after a failure: no collective (a rank may be gone)
            flush_log(collective=status != "failed")
        writer.close(status="failed" if status == "failed" else "finished")
        wandb.close(exit_code=1 if status == "failed" else 0)
        console.close()
    if info.is_main:
        if status in ("stopped", "paused"):
            print(f"hrm-train: {status} at step {step}; checkpoint saved, resume=auto continues")
        else:
            print(f"hrm-train: done at step {step}; run in {run_dir}")
    return exit_code


# =================================================================================================
# Helpers of the recipe (small, pure or nearly)
# =================================================================================================


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _is_scalar_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.ndim == 0


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _finite(value: float) -> bool:
    import math

    return math.isfinite(value)


def _rows(tensors: dict[str, Any], index: int, size: int) -> dict[str, Any]:
    """Micro-batch `index` of a local batch: rows [index*size, (index+1)*size)."""
    return {k: v[index * size : (index + 1) * size] for k, v in tensors.items()}


def _join_outputs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    import torch

    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _join_carries(carries: list[Any]) -> Any:
    import torch

    from hrm_core.model import ACTCarry

    flats = [c.to_dict() for c in carries]
    return ACTCarry.from_dict({k: torch.cat([f[k] for f in flats]) for k in flats[0]})


def _join_embedding_rows(emb: Any, parts: list[tuple[Any, Any, Any]]) -> None:
    """With gradient accumulation each micro-batch's forward replaced the embedding's leaf of
    used rows; give the SignSGD step all of them (rows, their gradients, their ids)."""
    import torch

    rows = torch.cat([p[0] for p in parts]).requires_grad_(True)
    rows.grad = torch.cat([p[1] for p in parts])
    emb.local_weights = rows
    emb.local_ids = torch.cat([p[2] for p in parts])


def _apply_hot(hot: Any, opt: Any, emb_opt: Any, model: Any) -> None:
    """Push the hot values into the optimizers and the model (the lrs are set every step)."""
    for group in opt.param_groups:
        group["weight_decay"] = hot["weight_decay"]
    if emb_opt is not None:
        for group in emb_opt.param_groups:
            group["weight_decay"] = hot["puzzle_emb_weight_decay"]
    model.halt_exploration_prob = float(hot["arch.halt_exploration_prob"])


def _mean_over_ranks(
    host: dict[str, Any], names: list[str], sums: list[float] | None, world_size: int
) -> dict[str, Any]:
    """The probe's scalars averaged over ranks (for the console and W&B), when they were reduced;
    otherwise this rank's values."""
    if sums is None or not names:
        return dict(host)
    reduced = dict(host)
    reduced.update({name: s / world_size for name, s in zip(names, sums, strict=True)})
    return reduced


def _format_eval(step: int, results: dict[str, float]) -> str:
    sets = sorted({k.split("/")[1] for k in results})
    parts = []
    for s in sets:
        parts.append(
            f"{s}: acc {results[f'eval/{s}/accuracy']:.4f} exact "
            f"{results[f'eval/{s}/exact_accuracy']:.4f} ({results[f'eval/{s}/seconds']:.1f} s)"
        )
    return f"eval at step {step}: " + "; ".join(parts)


def _make_probe(cfg: Any, model: Any, opt: Any, emb_opt: Any) -> Any:
    """The hrm-doctor probe, when its package is installed (hrm_core.probe)."""
    try:
        from hrm_core.probe import Probe
    except ImportError:
        return None
    return Probe(
        model=model,
        optimizers={"model": opt, "puzzle_emb": emb_opt},
        every=cfg.probe.every,
        tensor_every=cfg.probe.tensor_every,
        halt_max_steps=cfg.arch.halt_max_steps,
        tier=cfg.probe.tier,
    )


if __name__ == "__main__":
    sys.exit(main())
