"""Probe benchmark: steps/s of the smoke-sized HRM with the probe off and with every quantity on,
every step, in one run (DESIGN.md "Numbers to reach": instrumented / plain step time <= 1.03).

The model is built directly (hrm_core.model + hrm_core.optim; no trainer) on random
4x4-Sudoku-shaped batches: vocab 6, seq 16, one puzzle id, batch 64, hidden 64, 1+1 layers,
H_cycles 1, L_cycles 2, halt_max_steps 4 (experiment=smoke). A step is what the trainer does:
forward through the loss head, backward, optimizer steps, zero_grad, the train metrics through
`metrics_to_host` and into a RunWriter. "off": no probe and `record_state_stats=False`; "on":
Probe(tier="full", every=1, tensor_every=1) with before_step/after_step/collect, and the
probe's metrics in the same host copy and log call.

Prints: steps/s off and on and their ratio (median of interleaved off/on block pairs, order
alternating ABBA), by the wall clock and by this thread's CPU time (on a shared machine the
wall clock also counts the time other processes took the core); the cost of each quantity per
step (a profiled probe), of all the hooks together, of the model's state statistics and of the
probe's entries in the host copy and the log call, as a share of the plain step; the peak
memory of each mode (CUDA max allocated, or the peak RSS on Linux) and the probe's persistent
allocation. Usage: python bench/probe.py [--pairs 30] [--block 20] [--device cpu|cuda]
[--threads 1] [--arch hrm_v1|trm]

`--arch trm`: the TRM smoke model (`experiment=smoke arch=trm`: mlp_t, hidden 32, one 2-block
network, H_cycles 2, L_cycles 1) with its EMA of the weights updated every step in both modes;
"on" adds the probe, whose `ema/param_dist` makes the EMA update measure its distance.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hrm_core.model import ACTLossHead, HRMConfig, TRMConfig, build_model
from hrm_core.optim import AdamAtan2, CastedSparseEmbeddingSignSGD, WeightEMA
from hrm_core.probe import Probe, metrics_to_host
from hrm_doctor import RunWriter

BATCH = 64
SMOKE = {
    "vocab_size": 6,
    "seq_len": 16,
    "num_puzzle_identifiers": 1,
    "batch_size": BATCH,
    "H_cycles": 1,
    "L_cycles": 2,
    "H_layers": 1,
    "L_layers": 1,
    "hidden_size": 64,
    "num_heads": 4,
    "expansion": 2.0,
    "halt_max_steps": 4,
    "halt_exploration_prob": 0.1,
    "forward_dtype": "float32",
}
TRM_SMOKE = {  # hrm_core/conf/arch_experiment/smoke_trm.yaml
    **SMOKE,
    "H_cycles": 2,
    "L_cycles": 1,
    "H_layers": 0,
    "L_layers": 2,
    "hidden_size": 32,
    "num_heads": 2,
    "mlp_t": True,
    "pos_encodings": "none",
    "puzzle_emb_len": 1,
}


def sudoku_batches(n: int, device: torch.device, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Random 4x4-Sudoku-shaped batches: digits 2..5, about half the inputs blank (1)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        labels = torch.randint(2, 6, (BATCH, 16), generator=gen)
        blank = torch.rand(BATCH, 16, generator=gen) < 0.5
        batches.append(
            {
                "inputs": torch.where(blank, 1, labels).to(device),
                "labels": labels.to(device),
                "puzzle_identifiers": torch.zeros(BATCH, dtype=torch.long, device=device),
            }
        )
    return batches


class Clock:
    """Wall and CPU time together; on CUDA, the device is synchronised at each reading."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def now(self) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # timing boundaries only
        return time.perf_counter(), time.thread_time()

    def since(self, start: tuple[float, float]) -> tuple[float, float]:
        wall, cpu = self.now()
        return wall - start[0], cpu - start[1]


class Bench:
    """The smoke model, its optimizers, a writer, and one training step with the probe on or off."""

    def __init__(
        self, device: torch.device, run_dir: Path, tier: str = "full", arch: str = "hrm_v1"
    ) -> None:
        torch.manual_seed(0)
        self.device = device
        self.tier = tier
        self.arch = arch
        self.clock = Clock(device)
        config = TRMConfig(**TRM_SMOKE) if arch == "trm" else HRMConfig(**SMOKE)
        self.model = build_model(arch, config).to(device)
        self.head = ACTLossHead(self.model).train()
        self.opt = AdamAtan2(self.model.parameters(), lr=1e-3, weight_decay=0.1)
        self.emb_opt = CastedSparseEmbeddingSignSGD(self.model.puzzle_emb, lr=1e-2)
        self.ema = WeightEMA(self.model, 0.99) if arch == "trm" else None
        self.batches = sudoku_batches(16, device)
        self.carry = self.head.initial_carry(self.batches[0])
        self.writer = RunWriter(run_dir)
        self.model.record_state_stats = False  # the probe turns it on when its tier has state/*
        self.probe = self.make_probe()
        self.state_stats = self.model.record_state_stats
        self.step_no = 0

    def make_probe(self, profile: bool = False) -> Probe:
        return Probe(
            self.head,
            {"model": self.opt, "puzzle_emb": self.emb_opt, "ema": self.ema},
            every=1,
            tensor_every=1,
            tier=self.tier,
            profile=profile,
        )

    def step(self, probe: Probe | None, hook_s: list[float] | None = None) -> None:
        """One training step; with `hook_s`, appends the seconds spent in the probe's hooks."""
        self.step_no += 1
        step, batch = self.step_no, self.batches[self.step_no % len(self.batches)]
        self.carry, loss, metrics, outputs, _ = self.head(self.carry, batch)
        (loss / BATCH).backward()
        in_hooks = 0.0
        if probe is not None:
            start = time.perf_counter()
            probe.before_step(step, loss=loss)
            in_hooks += time.perf_counter() - start
        self.opt.step()
        self.emb_opt.step()
        if self.ema is not None:
            self.ema.update()  # the trainer's (ema=true); measuring its distance is the probe's
        if probe is not None:
            start = time.perf_counter()
            probe.after_step(step)
            in_hooks += time.perf_counter() - start
        self.opt.zero_grad()
        self.emb_opt.zero_grad()
        train = {f"train/{k}": v for k, v in metrics.items()}
        if probe is not None:
            start = time.perf_counter()
            train.update(probe.collect(step, outputs=outputs, carry=self.carry))
            in_hooks += time.perf_counter() - start
        self.writer.log(metrics_to_host(train), step=step)  # the one host sync of the step
        if hook_s is not None:
            hook_s.append(in_hooks)

    def block(self, on: bool, steps: int) -> tuple[float, float]:
        """(wall, CPU) seconds per step over `steps` steps in one mode."""
        self.model.record_state_stats = on and self.state_stats
        if self.ema is not None:
            self.ema.track_distance = on
        probe = self.probe if on else None
        start = self.clock.now()
        for _ in range(steps):
            self.step(probe)
        wall, cpu = self.clock.since(start)
        return wall / steps, cpu / steps


def per_call_cpu_s(fn: Callable[[], object], repeat: int = 200) -> float:
    """Median CPU seconds per call of `fn` over 7 rounds of `repeat` calls (two clock reads
    per round: their cost is spread over the calls)."""
    rounds = []
    for _ in range(7):
        start = time.thread_time()
        for _ in range(repeat):
            fn()
        rounds.append((time.thread_time() - start) / repeat)
    return statistics.median(rounds)


def quantity_costs(bench: Bench, steps: int) -> tuple[dict[str, float], float]:
    """Median seconds per step of each quantity (a profiled probe, wall clock: a CPU-time
    clock is a syscall that would dwarf the small ones) and of all the hooks of the
    unprofiled probe (quantities + dispatch)."""
    profiled = bench.make_probe(profile=True)
    bench.model.record_state_stats = bench.state_stats
    for _ in range(5):
        bench.step(profiled)
    per_step: dict[str, list[float]] = {}
    for _ in range(steps):
        profiled.cost_s.clear()
        bench.step(profiled)
        for name, seconds in profiled.cost_s.items():
            per_step.setdefault(name, []).append(seconds)
    hook_s: list[float] = []
    for _ in range(steps):
        bench.step(bench.probe, hook_s)
    costs = {name: statistics.median(values) for name, values in per_step.items()}
    return costs, statistics.median(hook_s)


def state_stats_cost(bench: Bench) -> float:
    """CPU seconds per step of the model's own record_state_stats reductions (in its forward)."""
    z = bench.carry.inner_carry
    before = type(z)(z.z_H.clone(), z.z_L.clone())
    return per_call_cpu_s(lambda: bench.model._state_stats(before, z))


def host_and_log_cost(bench: Bench) -> tuple[float, float]:
    """Extra CPU seconds per step of the probe's entries in the host copy and in the log call."""
    bench.model.record_state_stats = bench.state_stats
    step = bench.step_no + 1
    carry, loss, metrics, outputs, _ = bench.head(bench.carry, bench.batches[0])
    (loss / BATCH).backward()
    bench.probe.before_step(step, loss=loss)
    bench.probe.after_step(step)
    probe_metrics = bench.probe.collect(step, outputs=outputs, carry=carry)
    bench.opt.zero_grad()
    bench.emb_opt.zero_grad()
    train = {f"train/{k}": v for k, v in metrics.items()}
    both = {**train, **probe_metrics}
    copy = per_call_cpu_s(lambda: metrics_to_host(both)) - per_call_cpu_s(
        lambda: metrics_to_host(train)
    )
    host_train, host_both = metrics_to_host(train), metrics_to_host(both)
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(tmp)
        log = per_call_cpu_s(lambda: writer.log(host_both, step=1)) - per_call_cpu_s(
            lambda: writer.log(host_train, step=1)
        )
        writer.close()
    return copy, log


def peak_bytes(bench: Bench, on: bool, steps: int) -> int | None:
    """Peak memory over `steps` steps of one mode: CUDA max allocated, or VmHWM (Linux) after
    resetting it through /proc/self/clear_refs."""
    if bench.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(bench.device)
        bench.block(on, steps)
        return torch.cuda.max_memory_allocated(bench.device)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    bench.block(on, steps)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def median_ratio(pairs: list[tuple[float, float]]) -> str:
    """Median of the per-pair on/off ratios, with their quartiles."""
    ratios = [on / off for off, on in pairs]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.4f} (quartiles {q1:.4f} .. {q3:.4f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=30, help="interleaved off/on block pairs")
    ap.add_argument("--block", type=int, default=20, help="steps per block")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    ap.add_argument("--tier", default="full", choices=["cheap", "standard", "full"])
    ap.add_argument("--arch", default="hrm_v1", choices=["hrm_v1", "trm"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(device, Path(tmp) / "run", tier=args.tier, arch=args.arch)
        for on in (False, True, False, True):  # warm-up: allocator, first-use snapshots
            bench.block(on, args.block)
        wall_pairs, cpu_pairs = [], []
        for pair in range(args.pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)  # ABBA
            times = {on: bench.block(on, args.block) for on in order}
            wall_pairs.append((times[False][0], times[True][0]))
            cpu_pairs.append((times[False][1], times[True][1]))
        costs, hooks_s = quantity_costs(bench, steps=5 * args.block)
        state_s = state_stats_cost(bench) if bench.state_stats else 0.0
        copy_s, log_s = host_and_log_cost(bench)
        peak_off = peak_bytes(bench, False, args.block)
        peak_on = peak_bytes(bench, True, args.block)
        bench.writer.close()

    wall_off = statistics.median(p[0] for p in wall_pairs)
    wall_on = statistics.median(p[1] for p in wall_pairs)
    cpu_off = statistics.median(p[0] for p in cpu_pairs)
    print(
        f"device {device} ({torch.get_num_threads()} thread(s)), smoke {args.arch}, batch {BATCH}, "
        f"probe tier {args.tier}, every quantity every step"
    )
    print(f"interleaved: {args.pairs} pairs x {args.block} steps per mode, ABBA")
    print(f"probe off : {1 / wall_off:7.2f} steps/s ({wall_off * 1e3:.2f} ms/step wall, median)")
    print(f"probe on  : {1 / wall_on:7.2f} steps/s ({wall_on * 1e3:.2f} ms/step wall, median)")
    print(f"ratio on/off, wall clock : {median_ratio(wall_pairs)}; goal <= 1.03")
    print(f"ratio on/off, CPU time   : {median_ratio(cpu_pairs)}")

    print("\nper-quantity time per step (profiled probe, median step;")
    print(f"% of the plain step's {cpu_off * 1e3:.2f} ms of CPU time):")
    for name, seconds in sorted(costs.items(), key=lambda kv: -kv[1]):
        print(f"  {name:38s} {seconds * 1e6:8.1f} us  {100 * seconds / cpu_off:6.2f} %")
    quantities_s = sum(costs.values())
    print(f"  {'sum':38s} {quantities_s * 1e6:8.1f} us  {100 * quantities_s / cpu_off:6.2f} %")
    rows = [
        ("probe hooks, unprofiled (all of them)", hooks_s),
        ("record_state_stats (in the forward)", state_s),
        ("metrics_to_host: the probe's entries", copy_s),
        ("RunWriter.log: the probe's entries", log_s),
    ]
    print("whole-probe time per step (hooks: median wall; the rest: CPU time):")
    for name, seconds in rows:
        print(f"  {name:38s} {seconds * 1e6:8.1f} us  {100 * seconds / cpu_off:6.2f} %")
    total = sum(s for _, s in rows)
    print(f"  {'total':38s} {total * 1e6:8.1f} us  {100 * total / cpu_off:6.2f} %")
    print(f"accounted ratio (1 + total / plain step CPU time): {1 + total / cpu_off:.4f}")
    print("(the hooks include ~0.1 ms of cost shifted from the optimizer: the first p.grad")
    print(" access after backward wraps each new gradient in a Python object)")

    has_snapshot = any(type(q).__name__ == "UpdateRatio" for q in bench.probe.quantities)
    snapshot = sum(p.numel() * p.element_size() for p in bench.model.parameters())
    snapshot *= has_snapshot
    kind = "CUDA max allocated" if device.type == "cuda" else "peak RSS, VmHWM"
    if peak_off is not None and peak_on is not None:
        print(
            f"\npeak memory ({kind}): off {peak_off / 2**20:.1f} MiB, on {peak_on / 2**20:.1f} MiB"
        )
    print(f"probe persistent allocation: {snapshot / 2**20:.2f} MiB (the update-ratio snapshot)")


if __name__ == "__main__":
    main()
