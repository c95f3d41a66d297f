"""Typed, validated configuration of `hrm-train`, composed by Hydra from `hrm_core/conf/`.

`load_config(overrides)` composes `conf/config.yaml` with Hydra overrides and validates it into
a frozen `TrainConfig`; `validate_config` does the same for a config Hydra already composed
(inside the `@hydra.main` trainer). A wrong key, type or value is a one-line UserError naming
the key. Cross-checks: `epochs % eval_interval == 0` here, and
`TrainConfig.check_world_size(world_size)` once the number of ranks is known.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hrm_core.data.arc import ArcBuildOptions
from hrm_core.data.maze import MazeBuildOptions
from hrm_core.data.sudoku import SudokuBuildOptions
from hrm_doctor.errors import UserError

RESUME_VALUES = "auto, true, false (= never), never, or a checkpoint or run directory"
MISSING_HINT = "set it (e.g. data_path=DIR) or choose a preset: task=NAME or experiment=NAME"

CONF_DIR = Path(__file__).resolve().parent / "conf"
"""The packaged Hydra config directory."""

DataBuild = Annotated[
    SudokuBuildOptions | MazeBuildOptions | ArcBuildOptions, Field(discriminator="kind")
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchConfig(_Section):
    """The model (HRM_NOTES, "Model"); defaults are the reference HRM-ACT-v1."""

    name: Literal["hrm_v1"] = Field("hrm_v1", description="Architecture: HRM-ACT-v1.")
    H_cycles: int = Field(2, ge=1, description="High-level updates per ACT segment.")
    L_cycles: int = Field(2, ge=1, description="Low-level updates per high-level update.")
    H_layers: int = Field(4, ge=1, description="Transformer blocks in the H module.")
    L_layers: int = Field(4, ge=1, description="Transformer blocks in the L module.")
    hidden_size: int = Field(512, ge=1, description="Model width.")
    num_heads: int = Field(
        8, ge=1, description="Attention heads (hidden_size / num_heads = head dim)."
    )
    expansion: float = Field(
        4.0,
        gt=0,
        description="SwiGLU width factor (inner = expansion*hidden*2/3, rounded up to 256).",
    )
    pos_encodings: Literal["rope", "learned"] = Field(
        "rope", description="Rotary or learned positions."
    )
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base.")
    puzzle_emb_ndim: int = Field(
        512,
        ge=0,
        description="Puzzle-embedding width (0: none); prepended as ceil(ndim/hidden) positions.",
    )
    halt_max_steps: int = Field(
        16, ge=1, description="Most ACT segments per sequence (evaluation always runs this many)."
    )
    halt_exploration_prob: float = Field(
        0.1, ge=0, le=1, description="Probability of drawing a minimum halt step in training."
    )
    loss_type: Literal["stablemax", "softmax"] = Field(
        "stablemax", description="Cross-entropy flavour of lm_loss."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ArchConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"arch.hidden_size ({self.hidden_size}) must be a multiple of "
                f"arch.num_heads ({self.num_heads})"
            )
        return self


class TRMArchConfig(ArchConfig):
    """The Tiny Recursive Model (TinyRecursiveModels `config/arch/trm.yaml`); docs/trm.md."""

    name: Literal["trm"] = Field("trm", description="Architecture: TRM.")  # type: ignore[assignment]
    H_cycles: int = Field(
        3, ge=1, description="Recursion rounds per supervision step (all but the last no-grad)."
    )
    L_cycles: int = Field(6, ge=1, description="Latent updates per round before the answer's.")
    H_layers: int = Field(0, ge=0, description="Ignored: TRM has one network (reference key).")
    L_layers: int = Field(2, ge=1, description="Blocks of the one tiny network.")
    pos_encodings: Literal["rope", "learned", "none"] = Field(  # type: ignore[assignment]
        "rope", description="Rotary, learned, or no positions (with mlp_t)."
    )
    mlp_t: bool = Field(
        False, description="Mix tokens with an MLP over the sequence instead of attention."
    )
    puzzle_emb_len: int = Field(
        16, ge=0, description="Prefix positions of the puzzle embedding (0: ceil(ndim/hidden))."
    )
    no_ACT_continue: bool = Field(
        True,
        description="Halt on q_halt > 0 without a Q-continue target (false: HRM's Q-learning).",
    )


Arch = Annotated[ArchConfig | TRMArchConfig, Field(discriminator="name")]


class ProbeConfig(_Section):
    """The hrm-doctor probe: per-step telemetry written into run_dir."""

    enabled: bool = Field(True, description="Write telemetry (off: only the train/* losses).")
    every: int = Field(1, ge=1, description="Log scalar probe quantities every N steps.")
    tensor_every: int = Field(
        100, ge=1, description="Log 1-D tensors (per-sample Q logits, halt steps) every N steps."
    )
    tier: Literal["cheap", "standard", "full"] = Field(
        "full",
        description="Probe cost tier: cheap (losses, ACT), standard (+ per-group norms), "
        "full (+ per-block norms and update ratios: every metric of the catalogue).",
    )


class RecipeConfig(_Section):
    """The settings of the preset a run was made from, as published (task=...) or designed
    (experiment=...): what hrm-doctor compares the run's own settings with ("lr far from the
    recipe"), and what it fits its patches to (an lr relative to the recipe's at the run's
    batch size). Each shipped preset writes its own values here; null without a preset."""

    name: str = Field(description="The recipe: the paper's task or the preset's purpose.")
    lr: float = Field(gt=0, description="The recipe's lr (Adam-atan2).")
    puzzle_emb_lr: float = Field(gt=0, description="The recipe's puzzle-embedding lr (SignSGD).")
    weight_decay: float = Field(ge=0, description="The recipe's weight decay.")
    puzzle_emb_weight_decay: float = Field(ge=0, description="Its puzzle-embedding weight decay.")
    global_batch_size: int = Field(ge=1, description="The batch the recipe's lr belongs to.")
    lr_warmup_steps: int = Field(ge=0, description="The recipe's warmup.")
    eval_interval: int = Field(ge=1, description="The recipe's eval_interval (epochs).")
    ema: bool = Field(False, description="The recipe evaluates an EMA of the weights (TRM).")
    ema_rate: float = Field(0.999, gt=0, lt=1, description="The recipe's EMA decay.")


class WandbConfig(_Section):
    """Weights & Biases logging (rank 0 only)."""

    mode: Literal["online", "offline", "disabled"] = Field(
        "offline", description="W&B mode; offline needs no account."
    )
    project: str = Field("hrm-doctor", description="W&B project.")
    name: str | None = Field(None, description="Run name (null: the run_dir's name).")


class TrainConfig(_Section):
    """Everything `hrm-train` reads; defaults are the reference's (HRM_NOTES, "Defaults")."""

    run_dir: str = Field(description="Run directory: telemetry, checkpoints, findings.")
    data_path: str = Field(
        description="Dataset directory in the reference format (train/ and test/)."
    )
    data_build: DataBuild | None = Field(
        None,
        description="Builder options that create data_path when it holds no dataset (null: never).",
    )
    seed: int = Field(0, ge=0, description="Seed of model init, data order and ACT exploration.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: cuda, else mps, else cpu."
    )
    forward_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="Forward dtype over fp32 master weights; auto: bfloat16 on cuda, else float32.",
    )
    compile: bool = Field(False, description="torch.compile the model.")
    preflight: bool = Field(
        False,
        description="Only check config, data, torchrun env, one real step, memory; exit 0 or 2.",
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="Intra-op threads on CPU (null: OMP_NUM_THREADS, else cores/local ranks - 1).",
    )
    global_batch_size: int = Field(
        768, ge=1, description="Examples per optimizer step over all ranks."
    )
    grad_accum_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step on each rank."
    )
    epochs: int = Field(100000, ge=1, description="Epochs (one puzzle per group each).")
    eval_interval: int = Field(
        10000, ge=1, description="Epochs between evaluations; must divide epochs."
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="Global evaluation batch (null: global_batch_size)."
    )
    eval_max_examples: int | None = Field(
        None, ge=1, description="Evaluate at most this many examples per set (null: all)."
    )
    data_sampling: Literal["reference", "whole_puzzles"] = Field(
        "reference",
        description="Training batches: reference = the reference's sampler (a puzzle is cut at "
        "the batch boundary, examples shuffled inside a puzzle); whole_puzzles = every example "
        "of a drawn puzzle, in order, spilling into the next batch (hrm_core before issue 16).",
    )
    eval_arc: bool | None = Field(
        None,
        description="Score ARC as in the paper at each evaluation: undo augmentations, vote "
        "weighted by q_halt, log eval/arc/pass@1 and pass@2, write the submission JSON to "
        "run_dir/evaluations/step_N/ (null: when the test set is ARC-encoded with puzzle names).",
    )
    lr: float = Field(
        1e-4, gt=0, description="Peak learning rate of the main optimizer (Adam-atan2)."
    )
    lr_min_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Cosine floor as a fraction of lr (1.0: constant after warmup).",
    )
    lr_warmup_steps: int = Field(2000, ge=0, description="Linear warmup steps of both optimizers.")
    beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="Adam beta2.")
    weight_decay: float = Field(
        0.1, ge=0, description="Decoupled weight decay of the main optimizer."
    )
    grad_clip_norm: float | None = Field(
        None, gt=0, description="Clip the global gradient norm to this (null: off)."
    )
    puzzle_emb_lr: float = Field(
        1e-2, gt=0, description="Learning rate of the sparse puzzle-embedding SignSGD."
    )
    puzzle_emb_weight_decay: float = Field(
        0.1, ge=0, description="Decoupled weight decay of the puzzle embeddings."
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Also checkpoint every N steps (always: at each evaluation, stop and end).",
    )
    keep_last: int | None = Field(3, ge=1, description="Checkpoints kept in run_dir (null: all).")
    max_steps: int | None = Field(
        None,
        ge=1,
        description="Stop (with a checkpoint) after this step; the lr schedule is unchanged.",
    )
    skip_batches: int = Field(
        0,
        ge=0,
        description="On start or resume, skip this many training batches (rollback past a spike).",
    )
    resume: str = Field(
        "auto",
        min_length=1,
        description=(
            "auto: the newest checkpoint in run_dir if there is one; true: that checkpoint, "
            "and an error when there is none; never (or false): start fresh; or a checkpoint "
            "or run directory."
        ),
    )
    recipe: RecipeConfig | None = Field(
        None, description="The preset's own settings, set by each preset (hrm-doctor's anchor)."
    )
    ema: bool = Field(
        False,
        description="Keep an exponential moving average of the weights; evaluate and keep it "
        "in checkpoints (TRM's recipes: true).",
    )
    ema_rate: float = Field(
        0.999, gt=0, lt=1, description="EMA decay: ema <- rate * ema + (1 - rate) * weights."
    )
    arch: Arch = Field(default_factory=ArchConfig, description="The model: hrm_v1 or trm.")
    probe: ProbeConfig = Field(default_factory=ProbeConfig, description="The hrm-doctor probe.")
    wandb: WandbConfig = Field(default_factory=WandbConfig, description="W&B logging.")

    @field_validator("resume", mode="before")
    @classmethod
    def _resume_words(cls, value: Any) -> Any:
        """Hydra reads `resume=true` as a boolean: true resumes (and must find a checkpoint),
        false never does."""
        if isinstance(value, bool):
            return "true" if value else "never"
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on"):
            return "true"
        if isinstance(value, str) and value.strip().lower() in ("false", "no", "off"):
            return "never"
        if not isinstance(value, str):
            raise ValueError(f"must be {RESUME_VALUES}")
        return value

    @model_validator(mode="after")
    def _eval_interval_divides_epochs(self) -> TrainConfig:
        if self.epochs % self.eval_interval:
            raise ValueError(
                f"epochs ({self.epochs}) must be a multiple of eval_interval ({self.eval_interval})"
            )
        return self

    def check_world_size(self, world_size: int) -> None:
        """Raise a UserError unless the global batch splits evenly over ranks and micro-batches."""
        parts = world_size * self.grad_accum_steps
        if world_size < 1 or self.global_batch_size % parts:
            raise UserError(
                f"config key 'global_batch_size': {self.global_batch_size} is not divisible by "
                f"world_size ({world_size}) x grad_accum_steps ({self.grad_accum_steps})"
            )


def _key_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key a config may hold, for did-you-mean hints."""
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names.extend(_key_names(info.annotation, f"{prefix}{name}."))
    return names


def _all_key_names() -> list[str]:
    names = _key_names(TrainConfig)
    names.extend(_key_names(TRMArchConfig, "arch."))  # the arch union is not walked above
    for options in (SudokuBuildOptions, MazeBuildOptions, ArcBuildOptions):
        names.extend(f"data_build.{f.name}" for f in dataclasses.fields(options))
    return names


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, _all_key_names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"config key '{key}': unknown key{hint}"


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as `config key 'a.b': what is wrong (got X)`."""
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["data_build"] and len(loc) > 1:
        loc.pop(1)  # the union tag (sudoku/maze/arc) is not a key the user wrote
    if loc[:1] == ["arch"] and len(loc) > 2 and loc[1] in ("hrm_v1", "trm"):
        loc.pop(1)  # nor is the architecture's
    key = ".".join(loc)
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return _unknown_key(key)
    if error["type"] == "missing":
        return f"config key '{key}': missing"
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    value = error.get("input")
    got = f" (got {value!r})" if isinstance(value, str | int | float | bool | None) else ""
    return f"config key '{key}': {message}{got}" if key else f"config: {message}"


def validate_config(cfg: Any) -> TrainConfig:
    """Validate a composed config (a DictConfig or a plain mapping) into a TrainConfig."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or "?"
            if isinstance(exc, MissingMandatoryValue):
                raise UserError(f"config key '{key}': missing value; {MISSING_HINT}") from None
            raise UserError(f"config key '{key}': {str(exc).splitlines()[0]}") from None
    if isinstance(cfg, Mapping):
        cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    try:
        return TrainConfig.model_validate(cfg)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(_describe(errors[0]) + more) from None


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> Any:
    """Compose the packaged config with Hydra overrides; returns the (unresolved) DictConfig.

    Works inside a running Hydra app too: the global Hydra state is saved and restored.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        unknown = re.match(r"Could not override '([^']+)'", str(exc))
        if unknown and "not in struct" in str(exc.__cause__):
            raise UserError(_unknown_key(unknown.group(1))) from None
        text = str(exc).split("Config search path")[0]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        raise UserError(f"config overrides {list(overrides)}: {' '.join(lines)}") from None
    finally:
        restore_gh_from_backup(backup)


def load_config(overrides: Sequence[str] = (), config_name: str = "config") -> TrainConfig:
    """Compose `hrm_core/conf/<config_name>.yaml` with Hydra overrides and validate it."""
    return validate_config(compose_config(overrides, config_name))
