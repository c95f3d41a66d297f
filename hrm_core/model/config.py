"""Typed, validated configuration of an HRM-ACT model (the `arch.*` keys plus data-derived sizes).

Defaults are the reference `hrm_v1` architecture (HRM_NOTES "Model", "Defaults").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

POS_ENCODINGS = ("rope", "learned")
TRM_POS_ENCODINGS = ("rope", "learned", "none")
FORWARD_DTYPES = ("auto", "float32", "bfloat16", "float16")
LOSS_TYPES = ("stablemax", "softmax")
# The reference names its loss functions; accept those spellings too.
LOSS_TYPE_ALIASES = {
    "stablemax_cross_entropy": "stablemax",
    "softmax_cross_entropy": "softmax",
}
# Keys of the data-derived part of the config (everything else lives under `arch.`).
DATA_KEYS = ("vocab_size", "seq_len", "num_puzzle_identifiers", "batch_size")
# Keys a Hydra `arch` group may hold that are not model hyper-parameters.
IGNORED_ARCH_KEYS = ("name", "loss")


class ConfigError(ValueError):
    """A user-fixable config problem; the message names the offending key."""


@dataclass(frozen=True)
class HRMConfig:
    """Hyper-parameters of one HRM-ACT model; frozen, validated on construction."""

    pos_encodings_allowed: ClassVar[tuple[str, ...]] = POS_ENCODINGS
    positive_fields: ClassVar[tuple[str, ...]] = (
        "vocab_size",
        "seq_len",
        "num_puzzle_identifiers",
        "batch_size",
        "H_cycles",
        "L_cycles",
        "H_layers",
        "L_layers",
        "hidden_size",
        "num_heads",
        "halt_max_steps",
    )

    vocab_size: int
    """Number of token ids (data-derived; Sudoku: 11)."""
    seq_len: int
    """Tokens per example, without the puzzle-embedding prefix (data-derived; Sudoku: 81)."""
    num_puzzle_identifiers: int = 1
    """Rows of the sparse puzzle-embedding table (data-derived; Sudoku: 1, ARC: ~961k)."""
    batch_size: int = 1
    """Local (per-rank) batch size; only sizes the sparse embedding's first scratch buffers."""
    H_cycles: int = 2
    """H-module updates per ACT segment."""
    L_cycles: int = 2
    """L-module updates per H update."""
    H_layers: int = 4
    """Transformer blocks in the H module."""
    L_layers: int = 4
    """Transformer blocks in the L module."""
    hidden_size: int = 512
    """Model width."""
    num_heads: int = 8
    """Attention heads (head dim = hidden_size / num_heads)."""
    expansion: float = 4.0
    """SwiGLU expansion; inner width = expansion*hidden*2/3 rounded up to a multiple of 256."""
    pos_encodings: str = "rope"
    """'rope' (rotary, default) or 'learned' (learned table added, sum scaled by 1/sqrt(2))."""
    rope_theta: float = 10000.0
    """RoPE base."""
    rms_norm_eps: float = 1e-5
    """Epsilon of the gain-free RMSNorm."""
    puzzle_emb_ndim: int | None = None
    """Width of a puzzle embedding; None means hidden_size (the reference default); 0 disables."""
    halt_max_steps: int = 16
    """Maximum ACT segments per example; evaluation always runs exactly this many."""
    halt_exploration_prob: float = 0.1
    """Initial exploration probability; the model keeps a mutable copy a live patch can change."""
    forward_dtype: str = "auto"
    """Compute dtype ('auto' = bfloat16 on CUDA, float32 elsewhere); weights stay fp32."""
    loss_type: str = "stablemax"
    """LM loss: 'stablemax' (reference default) or 'softmax' cross entropy."""

    def __post_init__(self) -> None:
        if self.puzzle_emb_ndim is None:
            object.__setattr__(self, "puzzle_emb_ndim", self.hidden_size)
        object.__setattr__(self, "loss_type", LOSS_TYPE_ALIASES.get(self.loss_type, self.loss_type))
        self._validate()

    # Derived sizes ---------------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def puzzle_emb_len(self) -> int:
        """Prefix positions taken by the puzzle embedding: ceil(puzzle_emb_ndim / hidden)."""
        return -(-int(self.puzzle_emb_ndim) // self.hidden_size)

    @property
    def prefix_len(self) -> int:
        """Positions in front of the tokens (the puzzle embedding's)."""
        return self.puzzle_emb_len

    @property
    def num_positions(self) -> int:
        """Length of the carry / attention sequence: seq_len + prefix_len."""
        return self.seq_len + self.prefix_len

    # Construction from a trainer config ------------------------------------------------------

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> HRMConfig:
        """Build from a trainer-style dict: `arch` sub-mapping (or `arch.X` keys) + data keys.

        Top-level keys that are neither data keys nor `arch` are ignored (they belong to the
        trainer: lr, seed, ...); an unknown key inside `arch` is an error that names it.
        """
        arch_fields = {f.name for f in fields(cls)} - set(DATA_KEYS)
        values: dict[str, Any] = {}
        arch: dict[str, Any] = dict(cfg.get("arch") or {})
        for key, value in cfg.items():
            if key.startswith("arch."):
                arch[key[len("arch.") :]] = value
            elif key in DATA_KEYS:
                values[key] = value
        for key, value in arch.items():
            if key in IGNORED_ARCH_KEYS:
                if key == "loss" and isinstance(value, Mapping) and "loss_type" in value:
                    values.setdefault("loss_type", value["loss_type"])
                continue
            if key not in arch_fields:
                raise ConfigError(
                    f"arch.{key}: unknown key (known: {', '.join(sorted(arch_fields))})"
                )
            values[key] = value
        for key in ("vocab_size", "seq_len"):
            if key not in values:
                raise ConfigError(f"{key}: missing (it comes from the dataset metadata)")
        return cls(**values)

    # Validation ------------------------------------------------------------------------------

    def _validate(self) -> None:
        def key(name: str) -> str:
            return name if name in DATA_KEYS else f"arch.{name}"

        for name in self.positive_fields:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key(name)}: must be a positive integer (got {value!r})")
        if not isinstance(self.puzzle_emb_ndim, int) or self.puzzle_emb_ndim < 0:
            raise ConfigError(
                f"arch.puzzle_emb_ndim: must be an integer >= 0 (got {self.puzzle_emb_ndim!r})"
            )
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"arch.hidden_size: {self.hidden_size} is not divisible by arch.num_heads "
                f"({self.num_heads})"
            )
        if self.pos_encodings not in self.pos_encodings_allowed:
            raise ConfigError(
                f"arch.pos_encodings: must be one of {self.pos_encodings_allowed} "
                f"(got {self.pos_encodings!r})"
            )
        if self.pos_encodings == "rope" and self.head_dim % 2:
            raise ConfigError(f"arch.num_heads: RoPE needs an even head dim (got {self.head_dim})")
        if self.forward_dtype not in FORWARD_DTYPES:
            raise ConfigError(
                f"arch.forward_dtype: must be one of {FORWARD_DTYPES} (got {self.forward_dtype!r})"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(
                f"arch.loss_type: must be one of {LOSS_TYPES} (got {self.loss_type!r})"
            )
        for name in ("expansion", "rope_theta", "rms_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"arch.{name}: must be a positive number (got {value!r})")
        p = self.halt_exploration_prob
        if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"arch.halt_exploration_prob: must be in [0, 1] (got {p!r})")


@dataclass(frozen=True)
class TRMConfig(HRMConfig):
    """Hyper-parameters of a Tiny Recursive Model (TinyRecursiveModels `config/arch/trm.yaml`).

    One network of L_layers blocks serves both updates: H_cycles is the number of recursion
    rounds (each L_cycles latent updates, then one answer update), H_layers is ignored.
    """

    pos_encodings_allowed: ClassVar[tuple[str, ...]] = TRM_POS_ENCODINGS
    positive_fields: ClassVar[tuple[str, ...]] = tuple(
        name for name in HRMConfig.positive_fields if name != "H_layers"
    )

    H_cycles: int = 3
    """Recursion rounds per supervision step (the first H_cycles - 1 without gradient)."""
    L_cycles: int = 6
    """Latent updates z <- net(z, y + x) per round, before the answer update y <- net(y, z)."""
    H_layers: int = 0
    """Ignored (TRM has one network); kept so reference configs load."""
    L_layers: int = 2
    """Blocks of the one tiny network."""
    mlp_t: bool = False
    """Mix tokens with an MLP over the sequence axis instead of self-attention."""
    puzzle_emb_len: int = 16  # type: ignore[assignment]  # a field here, derived in HRM
    """Prefix positions of the puzzle embedding (0: ceil(puzzle_emb_ndim / hidden), as HRM)."""
    no_ACT_continue: bool = True
    """Halt when q_halt > 0 and train no Q-continue head (the reference default); False: HRM's
    Q-learning with the bootstrapped continue target."""

    @property
    def prefix_len(self) -> int:
        if self.puzzle_emb_ndim == 0:
            return 0  # nothing to prepend (the reference would fail on the shape)
        if self.puzzle_emb_len:
            return self.puzzle_emb_len
        return -(-int(self.puzzle_emb_ndim) // self.hidden_size)

    def _validate(self) -> None:
        super()._validate()
        for name in ("mlp_t", "no_ACT_continue"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"arch.{name}: must be true or false (got {getattr(self, name)!r})"
                )
        if self.H_layers < 0 or self.puzzle_emb_len < 0:
            raise ConfigError("arch.H_layers and arch.puzzle_emb_len: must be >= 0")
        if self.puzzle_emb_len and self.puzzle_emb_len * self.hidden_size < self.puzzle_emb_ndim:
            raise ConfigError(
                f"arch.puzzle_emb_len: {self.puzzle_emb_len} positions of width "
                f"{self.hidden_size} cannot hold arch.puzzle_emb_ndim={self.puzzle_emb_ndim}"
            )
