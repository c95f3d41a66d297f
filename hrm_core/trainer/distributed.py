"""torchrun and devices: the process group from the environment, the device, CPU threads.

`hrm-train` runs as one process, or as N under `torchrun` (gloo on CPU, nccl on GPU). Besides
the main group (which carries the gradients), a small gloo group carries host-side decisions
(live patches, stop requests) so that every rank applies the same change at the same step
without a device sync.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hrm_doctor.errors import UserError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun sets for every worker; init_process_group(init_method='env://') reads them."""

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)
"""Long enough for a rank-0-only evaluation or a checkpoint of a big embedding table."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size and the same on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    control_group: Any = None
    """The gloo group for host-side messages (None when world_size == 1)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def torchrun_problems(env: dict[str, str] | None = None) -> list[str]:
    """One line per inconsistency in the torchrun variables (empty: fine, or not under torchrun)."""
    env = dict(os.environ if env is None else env)
    present = [name for name in TORCHRUN_VARS if name in env]
    if not present:
        return []
    problems = []
    missing = [name for name in TORCHRUN_VARS if name not in env]
    if missing:
        problems.append(
            f"torchrun environment: {', '.join(present)} set but {', '.join(missing)} missing; "
            "launch with `torchrun --nproc_per_node=N hrm-train ...`"
        )
        return problems
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env["LOCAL_RANK"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        int(env["MASTER_PORT"])
    except ValueError:
        return [
            f"torchrun environment: non-integer RANK/WORLD_SIZE/LOCAL_RANK/MASTER_PORT in {env}"
        ]
    if not 0 <= rank < world:
        problems.append(f"torchrun environment: RANK={rank} is not in [0, WORLD_SIZE={world})")
    if not 0 <= local_rank < local_world:
        problems.append(
            f"torchrun environment: LOCAL_RANK={local_rank} is not in "
            f"[0, LOCAL_WORLD_SIZE={local_world})"
        )
    return problems


def env_rank() -> int:
    """This process's rank from the environment (0 outside torchrun), before any group exists."""
    return int(os.environ.get("RANK", "0") or 0)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto`: cuda (this node's local_rank-th GPU), else mps, else cpu; or the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("config key 'device': cuda requested but no CUDA device is available")
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"config key 'device': local rank {local_rank} needs GPU {local_rank} but only "
                f"{torch.cuda.device_count()} are visible; lower --nproc_per_node"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("config key 'device': mps requested but MPS is not available")
    return torch.device(name)


def set_cpu_threads(requested: int | None, local_world_size: int) -> int:
    """Intra-op threads: `requested`, else OMP_NUM_THREADS, else the usable cores / local ranks,
    less one (left to the telemetry writer, the data and the OS).

    N ranks on one node must share its cores, and a thread per core on a busy machine is
    dramatically slow (OpenMP spin contention: the smoke model took 90-450 ms per step with 2
    threads on a shared 2-core machine, 47 ms with 1).
    """
    if requested is None:
        omp = os.environ.get("OMP_NUM_THREADS", "")
        if omp.isdigit() and int(omp) > 0:
            requested = int(omp)
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            per_rank = (cores or os.cpu_count() or 1) // max(1, local_world_size)
            requested = max(1, per_rank - 1)
    torch.set_num_threads(requested)
    return requested


def init_distributed(device_name: str) -> DistInfo:
    """Join the torchrun process group (nccl for cuda, else gloo); a no-op for one process."""
    problems = torchrun_problems()
    if problems:
        raise UserError(problems[0])
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
    # Host-side messages go over gloo even when gradients go over nccl: no GPU round trip.
    control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    return DistInfo(rank, world_size, local_rank, local_world, backend, control)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier(group=info.control_group)


def broadcast_json(info: DistInfo, value: Any) -> Any:
    """Rank 0's JSON-able `value` on every rank (a host-side message over the gloo group)."""
    if not info.distributed:
        return value
    payload = [json.dumps(value) if info.is_main else None]
    dist.broadcast_object_list(payload, src=0, group=info.control_group)
    return json.loads(payload[0])


def on_main(info: DistInfo, fn: Any) -> Any:
    """`fn()` on rank 0 only; its JSON-able result on every rank. A UserError there is raised on
    every rank (instead of rank 0 exiting while the others wait at the next collective)."""
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except UserError as exc:
            error = str(exc)
    result, error = broadcast_json(info, [result, error])
    if error is not None:
        raise UserError(error)
    return result


def any_flags(info: DistInfo, flags: list[int]) -> list[int]:
    """Element-wise max of small host integers over ranks (one tiny gloo all-reduce)."""
    if not info.distributed:
        return flags
    tensor = torch.tensor(flags, dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=info.control_group)
    return tensor.tolist()


def broadcast_module_(info: DistInfo, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (as the reference does after init)."""
    if not info.distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


class CommTimer:
    """Seconds spent in collectives this step, without a host sync of its own.

    gloo collectives block the host, so a wall clock is exact. nccl ones run on their own
    stream: CUDA events around them are read after the step's one host sync, when they are done.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._host_s = 0.0
        self._events: list[tuple[Any, Any]] = []
        self._t0 = 0.0
        self._start: Any = None

    def reset(self) -> None:
        self._host_s = 0.0
        self._events = []

    def __enter__(self) -> CommTimer:
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._start, end))
        else:
            self._host_s += time.perf_counter() - self._t0

    def seconds(self) -> float:
        """Call after the step's host sync: the events are complete by then."""
        total = self._host_s
        for start, end in self._events:
            end.synchronize()  # already complete after the step's sync: does not wait
            total += start.elapsed_time(end) / 1000.0
        return total
