"""What a probe can measure on a model, found by duck typing: parameter groups, the ACT wrapper,
the sparse puzzle embedding and the optimizers' own statistics.

Only attribute names are relied on (those of hrm_core and of the reference HRM, which share
them): `inner`, `H_level`/`L_level` with `layers.N`, `embed_tokens`, `lm_head`, `q_head`, a
module with `weights` and `local_weights` (+ `local_ids`) for the puzzle embedding,
`halt_max_steps` and `record_state_stats` on the ACT wrapper, `last_stats` on an optimizer.
Whatever is missing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

PUZZLE_EMB_GROUP = "puzzle_emb"
TOTAL = ""
"""The reducer row over every parameter (grad/norm itself)."""
LEVELS = {"H_level": "H", "L_level": "L"}
EMBED_MODULES = ("embed_tokens", "embed_pos")
# Wrappers whose name prefix says nothing about the group (DDP, torch.compile, a loss head).
WRAPPER_PREFIXES = ("module", "_orig_mod", "model")


def parameter_group_names(name: str) -> list[str]:
    """The telemetry groups of a parameter name: e.g. 'model.inner.H_level.layers.0.mlp.w'
    -> ['H', 'H.0']; embed_tokens/embed_pos -> ['embed']; other heads -> [their name].
    Matches `hrm_core.model.module_groups` (tested), without importing it."""
    parts = name.split(".")
    if "inner" in parts:
        parts = parts[parts.index("inner") + 1 :]
    else:
        while len(parts) > 1 and parts[0] in WRAPPER_PREFIXES:
            parts = parts[1:]
    head = parts[0]
    if head in EMBED_MODULES:
        return ["embed"]
    if head in LEVELS:
        level = LEVELS[head]
        if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit():
            return [level, f"{level}.{parts[2]}"]
        return [level]
    return [head]


def is_block_group(group: str) -> bool:
    """'H.0', 'L.3': per-block groups (the FULL tier); levels and heads are not."""
    level, _, index = group.partition(".")
    return level in LEVELS.values() and index.isdigit()


def _find_puzzle_embedding(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if isinstance(getattr(module, "weights", None), torch.Tensor) and hasattr(
            module, "local_weights"
        ):
            return module
    return None


def _find_act(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if isinstance(getattr(module, "halt_max_steps", None), int):
            return module
    return None


def _as_optimizer_list(optimizers: Any) -> list[Any]:
    if optimizers is None:
        return []
    if isinstance(optimizers, Mapping):
        return list(optimizers.values())
    if isinstance(optimizers, Iterable):
        return list(optimizers)
    return [optimizers]


@dataclass
class ProbeTarget:
    """The model as the probe sees it, discovered once (`ProbeTarget.discover`)."""

    root: nn.Module
    params: list[torch.Tensor]
    """Every parameter once, in `named_parameters` order; index i is column i below."""
    groups: dict[str, list[int]]
    """group -> indices into `params` (block groups overlap their level's group)."""
    act: nn.Module | None
    """The ACT wrapper (has `halt_max_steps`), or None."""
    puzzle_emb: nn.Module | None
    """The sparse puzzle-embedding table (`weights`, `local_weights`, `local_ids`), or None."""
    optimizers: list[Any] = field(default_factory=list)
    halt_max_steps: int | None = None
    _columns: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def discover(
        cls,
        model: nn.Module,
        optimizers: Any = None,
        halt_max_steps: int | None = None,
        groups: Mapping[str, Iterable[torch.Tensor]] | None = None,
    ) -> ProbeTarget:
        """Look the model over; `groups` (name -> parameters) overrides the name-based grouping."""
        named = list(model.named_parameters())
        params = [p for _, p in named]
        if groups is None:
            index: dict[str, list[int]] = {}
            for i, (name, _) in enumerate(named):
                for group in parameter_group_names(name):
                    index.setdefault(group, []).append(i)
        else:
            position = {id(p): i for i, p in enumerate(params)}
            index = {}
            for group, members in groups.items():
                index[group] = [position[id(p)] for p in members if id(p) in position]
        act = _find_act(model)
        if halt_max_steps is None and act is not None:
            halt_max_steps = int(act.halt_max_steps)
        return cls(
            root=model,
            params=params,
            groups=index,
            act=act,
            puzzle_emb=_find_puzzle_embedding(model),
            optimizers=_as_optimizer_list(optimizers),
            halt_max_steps=halt_max_steps,
        )

    @property
    def state_names(self) -> tuple[str, str]:
        """Telemetry names of the carry's two states (z_H, z_L order): the model's
        `state_names`, ("y", "z") for the reference TRM, else ("z_H", "z_L")."""
        names = getattr(self.act, "state_names", None)
        if isinstance(names, tuple) and len(names) == 2:
            return names
        if any("TinyRecursive" in type(m).__name__ for m in self.root.modules()):
            return ("y", "z")
        return ("z_H", "z_L")

    @property
    def has_q_continue(self) -> bool:
        """Whether the model trains a Q-continue head: not hrm_core's TRM (`continue_head`
        False), nor the reference TRM with `no_ACT_continue` (its default)."""
        flag = getattr(self.act, "continue_head", None)
        if isinstance(flag, bool):
            return flag
        for module in self.root.modules():
            config = getattr(module, "config", None)
            if "TinyRecursive" in type(module).__name__ and config is not None:
                return not getattr(config, "no_ACT_continue", True)
        return True

    @property
    def ema(self) -> Any:
        """The weights' moving average among the optimizers: hrm_core's `WeightEMA` (it keeps
        `last_distance`) or the reference TRM's `EMAHelper` (`shadow` by name, `mu`); or None."""
        for opt in self.optimizers:
            if hasattr(opt, "track_distance") or (
                isinstance(getattr(opt, "shadow", None), Mapping) and hasattr(opt, "mu")
            ):
                return opt
        return None

    @property
    def num_params(self) -> int:
        return len(self.params)

    @cached_property
    def grad_reducer(self) -> GroupReducer:
        """Gradient rows: the total over the parameters, every group, the puzzle embedding."""
        rows = {TOTAL: list(range(self.num_params)), **self.groups}
        if self.puzzle_emb is not None:
            rows[PUZZLE_EMB_GROUP] = [self.puzzle_emb_column]
        return GroupReducer(rows, self.num_params + (self.puzzle_emb is not None))

    @cached_property
    def param_reducer(self) -> GroupReducer:
        """Weight rows: every group."""
        return GroupReducer(self.groups, self.num_params)

    @cached_property
    def param_update_reducer(self) -> GroupReducer:
        """Every group's rows over [weights, updates, 0]: weight norms, then update norms."""
        n = self.num_params
        rows = {f"param:{g}": c for g, c in self.groups.items()}
        rows.update({f"update:{g}": [n + i for i in c] for g, c in self.groups.items()})
        return GroupReducer(rows, 2 * n)

    @property
    def puzzle_emb_column(self) -> int:
        """Column of the puzzle-embedding gradient in the per-tensor gradient vector."""
        return len(self.params)

    def columns_of(self, present: tuple[bool, ...], device: torch.device) -> torch.Tensor:
        """Long tensor of the True positions of `present`, built once per pattern and device
        (a fresh host-to-device copy every step would block on CUDA)."""
        key = (present, device)
        if key not in self._columns:
            columns = [i for i, is_present in enumerate(present) if is_present]
            self._columns[key] = torch.tensor(columns, dtype=torch.long, device=device)
        return self._columns[key]

    def puzzle_emb_grad(self) -> torch.Tensor | None:
        """(rows in the batch, dim) gradient of the table's rows used this step, or None."""
        rows = getattr(self.puzzle_emb, "local_weights", None)
        return rows.grad if isinstance(rows, torch.Tensor) else None

    def sparse_stats(self) -> Mapping[str, torch.Tensor] | None:
        """`last_stats` of the first optimizer that keeps puzzle-embedding statistics."""
        for opt in self.optimizers:
            stats = getattr(opt, "last_stats", None)
            if isinstance(stats, Mapping) and stats:
                return stats
        return None


_CONSTANTS: dict[tuple[torch.device, torch.dtype, float], torch.Tensor] = {}


def constant(value: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A cached 0-d tensor, made once per (device, dtype, value): a fresh one each step would be
    an op (and on CUDA a host-to-device copy). Never written: callers only read it."""
    key = (device, dtype, value)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(value, dtype=dtype, device=device)
    return _CONSTANTS[key]


def tensor_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(n + 1,) L2 norms of n tensors and a trailing 0 (what `GroupReducer`'s padding reads):
    one fused `_foreach_norm` and one stack."""
    norms = torch._foreach_norm(tensors)  # one kernel per (device, dtype) group
    return torch.stack([*norms, constant(0.0, norms[0].device, norms[0].dtype)])


class GroupReducer:
    """Group L2 norms from per-tensor norms: one gather and one `vector_norm` for all groups.

    A (groups x longest group) index matrix, built once, picks each group's per-tensor norms;
    short rows are padded with the index of the trailing 0 that `tensor_norms` appends; the
    norm of a row of norms is the group's norm. Overlapping groups (a level and its blocks)
    cost nothing extra. Not a 0/1 mat-vec: 0 x NaN is NaN, so one non-finite gradient would
    poison every group's norm and hide which module overflowed.
    """

    def __init__(self, rows: Mapping[str, list[int]], width: int) -> None:
        self.names = list(rows)
        longest = max((len(c) for c in rows.values()), default=0)
        index = torch.full((len(self.names), max(longest, 1)), width, dtype=torch.long)
        for r, columns in enumerate(rows.values()):
            index[r, : len(columns)] = torch.tensor(columns, dtype=torch.long)
        self.index = index

    def __call__(self, norms: torch.Tensor) -> torch.Tensor:
        """(width + 1,) per-tensor norms, the last one 0 -> (groups,) fp32 norms."""
        if self.index.device != norms.device:  # the model moved after setup: follow it once
            self.index = self.index.to(norms.device)
        rows = torch.take(norms, self.index)  # (groups, longest)
        return torch.linalg.vector_norm(rows, dim=1, dtype=torch.float32)

    def named(self, values: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
        """{prefix + group: 0-d view} of a (groups,) result (one unbind: views, no copies)."""
        return {prefix + n: v for n, v in zip(self.names, values.unbind(0), strict=True)}
