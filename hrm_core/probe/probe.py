"""`Probe`: runs the catalogue's quantities at their hooks and schedules, on the device, with no
host sync; `metrics_to_host` then brings a logged step over in one copy.

In a trainer (hrm_core.pretrain):

    probe = Probe(model=model, optimizers={"model": opt, "puzzle_emb": emb_opt}, every=1,
                  tensor_every=100, halt_max_steps=16, tier="standard")
    ...backward, all-reduce...
    probe.before_step(step, loss=loss)   # gradients (pre-clip), non-finite count, snapshots
    ...clip, optimizer.step()...
    probe.after_step(step)               # weight norms, update ratios, embedding stats
    metrics = probe.collect(step, outputs=outputs, carry=carry)   # {} when nothing is due
    host = metrics_to_host({**trainer_metrics, **metrics})        # the one sync

Around any other HRM trainer (issue 8):

    probe = Probe.attach("runs/x", model, optimizers)
    probe.step(step, outputs, carry, loss=loss)   # collects, syncs once and logs
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from hrm_core.probe import act, embedding, gradients, state, system, weights
from hrm_core.probe.context import StepContext
from hrm_core.probe.host import HostValue, metrics_to_host
from hrm_core.probe.quantity import HOOKS, Metrics, Quantity, Tier
from hrm_core.probe.target import ProbeTarget

QUANTITIES: tuple[type[Quantity], ...] = (
    gradients.GradNorm,
    gradients.GroupGradNorm,
    gradients.BlockGradNorm,
    gradients.NonfiniteCount,
    weights.UpdateRatio,
    weights.GroupParamNorm,
    weights.BlockParamNorm,
    weights.EMADistance,
    act.QValueSummary,
    act.TargetQMean,
    act.QSamples,
    act.HaltSteps,
    act.HaltAtMaxFrac,
    act.PrematureHaltFrac,
    act.HaltDelay,
    act.SupervisionStepLoss,
    state.StateRMS,
    state.StateDelta,
    embedding.PuzzleEmbSignFlip,
    embedding.PuzzleEmbRowsTouched,
    embedding.PuzzleEmbNorm,
    system.MemPeak,
)
"""Every quantity, in computation order: GradNorm pays for the shared gradient norms,
UpdateRatio computes the weight norms fused with its update norms for GroupParamNorm."""


class Probe:
    """The catalogue's probe quantities for one HRM-like model and its optimizers.

    `model` is the HRMACT, or any module containing it (a loss head, DDP, torch.compile);
    `optimizers` (a mapping, a list or one optimizer) are read for statistics they keep
    (`last_stats` of the puzzle-embedding SignSGD). `every` schedules scalar quantities,
    `tensor_every` the 1-D per-sample ones; `tier` ("cheap", "standard", "full") picks the
    quantities unless `quantities` (classes or instances) names them; `exclude` drops the
    quantities of the metric names the caller produces itself; `groups` (name ->
    parameters) overrides the name-based parameter groups. `profile=True` times each
    quantity into `cost_s` (wall time; on CUDA with a device sync around each quantity: for
    benchmarks only).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizers: Any = None,
        *,
        every: int = 1,
        tensor_every: int = 100,
        halt_max_steps: int | None = None,
        tier: str | Tier = "standard",
        quantities: Iterable[Quantity | type[Quantity]] | None = None,
        exclude: Iterable[str] = (),
        groups: Mapping[str, Iterable[torch.Tensor]] | None = None,
        profile: bool = False,
    ) -> None:
        self.target = ProbeTarget.discover(model, optimizers, halt_max_steps, groups)
        self.tier = Tier.parse(tier)
        if quantities is None:
            quantities = [cls for cls in QUANTITIES if cls.tier <= self.tier]
        # metrics the caller logs itself (hrm-train: grad/norm, nonfinite/count): one producer
        quantities = [q for q in quantities if q.name not in set(exclude)]
        chosen = [
            q if isinstance(q, Quantity) else q(tensor_every if q.per_sample else every)
            for q in quantities
        ]
        self.quantities: list[Quantity] = []
        self.skipped: dict[str, str] = {}
        """Quantity class name -> what it needed and did not find on this model."""
        for q in chosen:
            if q.setup(self.target):
                self.quantities.append(q)
            else:
                self.skipped[type(q).__name__] = q.requires or "not computable on this model"
        # Bound methods per hook, built once (the dispatch runs every step: keep it lean);
        # `observe` only for the quantities that keep per-step state.
        self._hook_fns = {
            h: [(q, getattr(q, h)) for q in self.quantities if h in q.hooks] for h in HOOKS
        }
        self._observers = [
            (q, q.observe) for q in self.quantities if type(q).observe is not Quantity.observe
        ]
        self._pending: Metrics = {}
        self._pending_step: int | None = None
        self._hooked_step: int | None = None
        self.profile = profile
        self.cost_s: dict[str, float] = defaultdict(float)
        """Seconds spent per quantity (only with profile=True)."""
        self.writer: Any = None

    # The trainer's hooks ------------------------------------------------------------------------

    def before_step(self, step: int, loss: torch.Tensor | None = None) -> None:
        """After backward (and the gradient all-reduce), before clipping and optimizer.step():
        gradient norms (pre-clip), the non-finite count (of `loss` too when given), and the
        snapshots the update ratios need. No host sync."""
        self._run_hook("before_step", StepContext(self.target, step, loss=loss))

    def after_step(self, step: int) -> None:
        """After optimizer.step(): weight norms, update ratios, puzzle-embedding statistics."""
        self._run_hook("after_step", StepContext(self.target, step))

    def collect(
        self, step: int, outputs: Mapping[str, torch.Tensor] | None = None, carry: Any = None
    ) -> Metrics:
        """The step's metrics: {name: 0-d or 1-D device tensor, `Ragged`, or Python number}
        from the hooks of this step and from `outputs`/`carry`; {} when nothing is due.
        Call it every step (per-slot ACT state follows each segment). No host sync."""
        return self._collect(StepContext(self.target, step, outputs, carry))

    # Foreign trainers: attach + step -----------------------------------------------------------

    @classmethod
    def attach(
        cls,
        run_dir: Any,
        model: nn.Module,
        optimizers: Any = None,
        *,
        config: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        tier: str | Tier = "full",
        **kwargs: Any,
    ) -> Probe:
        """A probe that logs to its own `RunWriter` in `run_dir` (rank and world size from
        torch.distributed when initialised). Every computable quantity by default."""
        from hrm_doctor import RunWriter

        if rank is None or world_size is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = torch.distributed.get_rank() if distributed else 0
            world_size = torch.distributed.get_world_size() if distributed else 1
        probe = cls(model, optimizers, tier=tier, **kwargs)
        probe.writer = RunWriter(run_dir, config=config, rank=rank, world_size=world_size)
        probe.writer.set_meta(num_params=sum(p.numel() for p in probe.target.params))
        return probe

    def step(
        self,
        step: int,
        outputs: Mapping[str, torch.Tensor] | None = None,
        carry: Any = None,
        *,
        loss: torch.Tensor | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, HostValue]:
        """One call per training step: collect what can be measured now, bring it (and
        `extra`, e.g. the trainer's own losses) to the host in one sync, log it when attached,
        and return the host values.

        Without before_step/after_step this step, the hook quantities use what exists at the
        call: gradient norms and the non-finite count only if gradients are still there
        (call before zero_grad), weight norms as they are, update ratios between consecutive
        calls, embedding sign flips only from an optimizer's `last_stats`.
        """
        ctx = StepContext(self.target, step, outputs, carry, loss)
        if self._hooked_step != step:
            results = self._results_for(step)
            with torch.no_grad():
                for q in self.quantities:
                    if q.hooks & {"before_step", "after_step"}:
                        due = q.should_compute(step)
                        part = (
                            self._timed(q, q.standalone, ctx, due)
                            if self.profile
                            else (q.standalone(ctx, due))
                        )
                        if part:
                            results.update(part)
        metrics = self._collect(ctx)
        host = metrics_to_host({**(extra or {}), **metrics})
        if self.writer is not None and host:
            self.writer.log(host, step=step)
        return host

    def close(self) -> None:
        """Close the writer `attach` opened (flushes what was logged)."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Introspection ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every telemetry key the active quantities may emit."""
        return [n for q in self.quantities for n in q.names()]

    # Internals ----------------------------------------------------------------------------------

    def _run_hook(self, hook: str, ctx: StepContext) -> None:
        self._hooked_step = ctx.step
        step, results = ctx.step, self._results_for(ctx.step)
        with torch.no_grad():
            for q, fn in self._hook_fns[hook]:
                if q.should_compute(step):
                    part = self._timed(q, fn, ctx) if self.profile else fn(ctx)
                    if part:
                        results.update(part)

    def _collect(self, ctx: StepContext) -> Metrics:
        step, results = ctx.step, self._results_for(ctx.step)
        with torch.no_grad():
            for q, fn in self._observers:
                self._timed(q, fn, ctx) if self.profile else fn(ctx)
            for q, fn in self._hook_fns["collect"]:
                if q.should_compute(step):
                    part = self._timed(q, fn, ctx) if self.profile else fn(ctx)
                    if part:
                        results.update(part)
        self._pending, self._pending_step = {}, None
        return results

    def _results_for(self, step: int) -> Metrics:
        """This step's results so far; those of an earlier, uncollected step are dropped."""
        if self._pending_step != step:
            self._pending, self._pending_step = {}, step
        return self._pending

    def _timed(self, q: Quantity, fn: Any, *args: Any) -> Any:
        on_cuda = bool(self.target.params) and self.target.params[0].device.type == "cuda"
        if on_cuda:  # profiling only: charge each quantity its device time
            torch.cuda.synchronize(self.target.params[0].device)  # host sync
        start = time.perf_counter()  # thread_time would be finer on a shared CPU, but it is a
        result = fn(*args)  # syscall (~5-10 us in a VM): it would dwarf the small quantities
        if on_cuda:
            torch.cuda.synchronize(self.target.params[0].device)  # host sync
        self.cost_s[type(q).__name__] += time.perf_counter() - start
        return result
