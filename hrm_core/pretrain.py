"""hrm-train: the HRM-ACT training recipe, top to bottom (nanoGPT style).

    hrm-train experiment=smoke                                  # a tiny HRM on the CPU, < 1 min
    torchrun --nproc_per_node=8 --no-python hrm-train task=sudoku_extreme_1k  # data-parallel
    hrm-train -m lr=1e-4,3e-4 experiment=smoke run_dir=runs/sweep  # one run per job: sweep/0, /1
    hrm-train experiment=smoke preflight=true                   # check everything, exit 0 or 2

Sections: 0. entry point (argv, validation, Hydra); 1. processes, device, seeds; 2. data;
3. model and optimizers; 4. resume; 5. telemetry, W&B, control channel, console, probe;
6. the training loop (one ACT segment per optimizer step, the carry crossing batches: halted
slots take the next batch's examples); 7. evaluation, checkpoints and the end.

Every host-device sync is commented `HOST SYNC`; there is one per step, in `StepSync.sync`
(plus one per evaluated set and per checkpoint). Behaviour follows ../shared/HRM_NOTES.md;
docs/training.md describes the run directory, resume, non-finite steps and multirun;
docs/control.md the live patches. The pieces live in hrm_core/trainer/.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrm_core.config import TrainConfig

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


def job(cfg: TrainConfig) -> int:
    """One run, from a validated TrainConfig: only the checks (preflight=true), or training."""
    if cfg.preflight:
        from hrm_core.trainer.preflight import run_preflight

        return run_preflight(cfg)
    return train(cfg)


# =================================================================================================
# The recipe
# =================================================================================================


def train(cfg: TrainConfig) -> int:
    """Train (or continue) the run described by a validated TrainConfig; returns an exit code."""
    import torch

    from hrm_core.optim import lr_at, set_lr
    from hrm_core.trainer import microbatch as mb
    from hrm_core.trainer.build import (
        build_network,
        make_probe,
        num_params,
        open_data,
        peak_memory_bytes,
        seed_everything,
    )
    from hrm_core.trainer.console import Console
    from hrm_core.trainer.control import ControlChannel, HotParams, StepBoundary, apply_hot
    from hrm_core.trainer.distributed import init_distributed, pick_device, set_cpu_threads
    from hrm_core.trainer.evaluation import evaluate, format_eval
    from hrm_core.trainer.resume import resume, skip_batches
    from hrm_core.trainer.saving import Loop, Saver
    from hrm_core.trainer.steplog import SUMS, StepLog, train_means
    from hrm_core.trainer.stepsync import StepSync
    from hrm_core.trainer.stop import StopSignal
    from hrm_core.trainer.wandb_logger import WandbLogger
    from hrm_doctor import RunWriter
    from hrm_doctor.rundir import evaluation_dir

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
    data = open_data(cfg, info)
    loader = data.loader

    # ---------------------------------------------------------------------------------------------
    # 3. Model, loss head, optimizers; gradients live in one flat buffer
    # ---------------------------------------------------------------------------------------------
    net = build_network(cfg, data, info, device)
    model, opt, emb_opt, grads = net.model, net.opt, net.emb_opt, net.grads
    q_continue = model.continue_head  # TRM: no continue loss
    if info.rank:  # a distinct ACT-exploration stream per rank
        seed_everything(cfg.seed + 1_000_003 * info.rank)

    # ---------------------------------------------------------------------------------------------
    # 4. Resume: weights, optimizer moments, schedule, RNG, ACT carry, data position, patches
    # ---------------------------------------------------------------------------------------------
    config_dict = cfg.model_dump(mode="json")  # the resolved config, saved and logged
    hot = HotParams.from_config(cfg)
    resumed = resume(cfg, info, device, data, net, hot, config_dict)
    if resumed.finished:
        if info.is_main:
            print(f"hrm-train: {resumed.path} is the end of a finished run (step {resumed.step})")
        return 0
    apply_hot(hot, opt, emb_opt, model)
    skip_batches(cfg, loader, resumed)  # after a rollback: past the data around a spike
    loop = Loop(resumed.step, hot, resumed.carries, resumed.skips, resumed.replay)

    # ---------------------------------------------------------------------------------------------
    # 5. Telemetry (every rank, one run dir), W&B and console (rank 0), control channel, probe
    # ---------------------------------------------------------------------------------------------
    writer = RunWriter(
        run_dir,
        config=config_dict,
        rank=info.rank,
        world_size=info.world_size,
        meta={"device": str(device), "total_steps": data.total_steps},
        resume_from_step=loop.step + 1,  # steps after the checkpoint logged before: superseded
        program="hrm-train",
    )
    n_params = num_params(model)
    writer.set_meta(num_params=n_params)
    wandb = WandbLogger(cfg.wandb.mode, cfg.wandb.project, cfg.wandb.name, run_dir,
                        config_dict, run_id=None, active=info.is_main)  # fmt: skip
    wandb.set_num_params(n_params)
    console = Console(info.is_main, data.last_step)
    log = StepLog(writer, wandb, console)
    sync = StepSync(info, log, device)
    boundary = StepBoundary(info, ControlChannel(run_dir, active=info.is_main), StopSignal())
    probe = make_probe(cfg, net)
    saver = Saver(cfg, info, device, data, net, config_dict, sync, writer, console.note)
    saver.last_saved = loop.step if resumed.path is not None else -1
    console.note(
        f"hrm-train: {run_dir} | {info.world_size} rank(s) on {device} | {n_params:,} params | "
        f"steps {loop.step}->{data.last_step} of {data.total_steps} | batch "
        f"{cfg.global_batch_size}" + (f" | resumed from {resumed.path}" if resumed.path else "")
    )

    def run_eval() -> None:
        if data.eval_loader is not None:
            with net.eval_weights():  # ema=true: the moving average is what is evaluated
                results = evaluate(net.loss_head, data.eval_loader, device, info,
                                   cfg.arch.halt_max_steps, arc=data.arc,
                                   arc_out=evaluation_dir(run_dir, loop.step))  # fmt: skip
            log.add(results, loop.step)
            console.note(format_eval(loop.step, results))
        loop.passes_evaluated = loader.position.pass_index

    # ---------------------------------------------------------------------------------------------
    # 6. + 7. The loop, with evaluation and checkpoints
    # ---------------------------------------------------------------------------------------------
    loop.passes_evaluated = loader.position.pass_index
    loop.finished = loop.step >= data.last_step or loader.position.pass_index >= data.num_passes
    _, sync.probe_keys_agree = boundary.exchange(0)  # requests already waiting: from step one
    t_last = time.perf_counter()
    loss_scale = 1.0 / cfg.global_batch_size  # gradients SUM over ranks -> the global mean
    try:
        while not loop.finished:
            pass_index = loader.position.pass_index
            for batch in loader.iter_pass():
                loop.step += 1
                step = loop.step
                # 6.1 Live patches decided at the last boundary (same on every rank), replays
                boundary.apply_decided(hot, step, console.note)
                if step in loop.replay:
                    hot.update(loop.replay.pop(step))
                apply_hot(hot, opt, emb_opt, model)
                lr = lr_at(step, hot["lr"], cfg.lr_warmup_steps, data.total_steps,
                           cfg.lr_min_ratio)  # fmt: skip
                emb_lr = lr_at(step, hot["puzzle_emb_lr"], cfg.lr_warmup_steps,
                               data.total_steps, cfg.lr_min_ratio)  # fmt: skip
                set_lr(opt, lr)
                if emb_opt is not None:
                    set_lr(emb_opt, emb_lr)

                # 6.2 The batch, on the device
                tensors = batch.to_torch(device)  # (local_batch, seq_len) each
                data_wait_s = time.perf_counter() - t_last
                sync.comm.reset()

                # 6.3 One ACT segment per micro-batch: forward, loss, backward. Each micro-batch
                # has its own carry; its halted slots take this batch's examples.
                grads.zero_()
                if emb_opt is not None:
                    emb_opt.zero_grad()
                if loop.carries is None:
                    loop.carries = [
                        net.loss_head.initial_carry(mb.rows(tensors, i, data.micro_batch))
                        for i in range(cfg.grad_accum_steps)
                    ]
                sums = None
                losses: list[torch.Tensor] = []
                emb_parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
                outputs_parts: list[dict[str, torch.Tensor]] = []
                for i in range(cfg.grad_accum_steps):
                    micro = mb.rows(tensors, i, data.micro_batch)  # (micro_batch, seq_len) each
                    loop.carries[i], loss, metrics, outputs, _ = net.step_fn(loop.carries[i], micro)
                    (loss * loss_scale).backward()
                    losses.append(loss.detach())
                    zero = torch.zeros((), device=device)
                    part = torch.stack(
                        [metrics.get(k, zero).to(torch.float64) for k in SUMS[:-1]]
                        + [(~torch.isfinite(loss)).to(torch.float64)]
                    )  # (9,): the loss head's sums and whether this loss is non-finite
                    sums = part if sums is None else sums + part
                    outputs_parts.append(outputs)
                    if (
                        net.emb is not None
                        and cfg.grad_accum_steps > 1
                        and net.emb_grad() is not None
                    ):
                        emb_parts.append((net.emb.local_weights.detach(), net.emb_grad(),
                                          net.emb.local_ids))  # fmt: skip
                if emb_parts:  # the SignSGD step reads one leaf: join the micro-batches' rows
                    mb.join_embedding_rows(net.emb, emb_parts)

                # 6.4 Gradients: non-finite count (this rank's own), all-reduce, global norm
                sums[-1] += grads.nonfinite_count()
                if net.emb_grad() is not None:
                    sums[-1] += torch.isfinite(net.emb_grad()).logical_not().sum()
                if info.distributed:
                    with sync.comm:
                        grads.all_reduce_()
                grad_norm = grads.norm()  # (,) before clipping
                if probe is not None:
                    probe.before_step(step, loss=torch.stack(losses).sum())

                # 6.5 THE host sync of the step (StepSync): this step's sums and grad norm, and
                # the held step's probe metrics, which is logged now; the rest stays on device.
                facts = sync.sync(sums, grad_norm)
                scalars = {
                    "train/lr": lr,
                    "train/puzzle_emb_lr": emb_lr,
                    "grad/norm": facts.grad_norm,  # before clipping: the trainer's own, once
                    "nonfinite/skipped": float(facts.nonfinite),
                }
                log.hold(
                    step,
                    {**train_means(facts.local, data.local_batch, q_continue), **scalars},
                    {**train_means(facts.reduced, cfg.global_batch_size, q_continue), **scalars},
                )

                # 6.6 The update: clip, Adam-atan2 and SignSGD; skipped when anything is not
                # finite (weights, moments and the embedding table stay as they were).
                if not facts.nonfinite:
                    clip = hot["grad_clip_norm"]
                    if clip is not None:
                        grads.clip_(clip, grad_norm)
                    opt.step()
                    if emb_opt is not None:
                        emb_opt.step()
                    if net.ema is not None:
                        net.ema.update()
                elif info.is_main:
                    console.note(f"step {step}: non-finite loss or gradient; update skipped")

                # 6.7 The probe: its post-step quantities, logged with this step at the next sync
                if probe is not None:
                    probe.after_step(step)
                    sync.hold_probe(probe.collect(step, outputs=mb.join_outputs(outputs_parts),
                                                  carry=mb.join_carries(loop.carries)))  # fmt: skip

                # 6.8 Step boundary: timings; new patches and stop requests, decided together
                t_now = time.perf_counter()
                step_time_s, t_last = t_now - t_last, t_now
                log.add(
                    {
                        "sys/step_time_s": step_time_s,
                        "sys/samples_per_s": cfg.global_batch_size / max(step_time_s, 1e-9),
                        "sys/data_wait_s": data_wait_s,
                        "sys/comm_s": sync.comm.seconds(),
                        "sys/mem_peak_bytes": float(peak_memory_bytes(device)),
                    }
                )
                flags, sync.probe_keys_agree = boundary.exchange(sync.probe_scalars())
                pass_ended = loader.position.pass_index != pass_index
                stops = boundary.take_stops(hot, step, console.note)  # a hopeless trial
                if flags[1] or stops or step >= data.last_step:  # stop, max_steps, the end
                    loop.finished = True
                    loop.reached_end = step >= data.total_steps and not stops
                    if stops:
                        loop.status = "stopped"
                    elif flags[1]:
                        loop.status = "stopped"
                        loop.exit_code = 0 if flags[1] == 143 else flags[1]
                    elif not loop.reached_end:
                        loop.status = "paused"  # max_steps: resume=auto continues the schedule
                    if not pass_ended and not loop.reached_end:
                        saver.save(loop)  # mid-pass stop: checkpoint now (a pass end evaluates)
                    break
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not pass_ended:
                    saver.save(loop)
                    t_last = time.perf_counter()

            # 7. End of a pass (eval_interval epochs) or of the schedule: evaluate, checkpoint
            pass_ended = loader.position.pass_index != pass_index
            if pass_ended or loop.reached_end:
                run_eval()
                done = (
                    loop.step >= data.total_steps or loader.position.pass_index >= data.num_passes
                )
                saver.save(loop, finished=done)
                loop.finished = loop.finished or done
                t_last = time.perf_counter()
        sync.flush()
    except BaseException:
        loop.status = "failed"
        raise
    finally:
        boundary.stop.restore()
        with contextlib.suppress(Exception):  # after a failure: no collective (a rank may be gone)
            sync.flush(collective=loop.status != "failed")
        writer.close(status="failed" if loop.status == "failed" else "finished")
        wandb.close(exit_code=1 if loop.status == "failed" else 0)
        console.close()
    if info.is_main:
        if loop.status in ("stopped", "paused"):
            print(f"hrm-train: {loop.status} at step {loop.step}; checkpoint saved, "
                  "resume=auto continues")  # fmt: skip
        else:
            print(f"hrm-train: done at step {loop.step}; run in {run_dir}")
    return loop.exit_code


if __name__ == "__main__":
    sys.exit(main())
