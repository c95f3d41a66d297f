"""What a rule may know about a run besides its metrics: config, meta, task, architecture and
recipe.

Names in rule expressions resolve here: a dotted config key (``lr``, ``arch.halt_max_steps``,
also written ``cfg.lr``), ``meta.*``, ``task`` (sudoku, maze, arc or unknown),
``architecture`` (hrm, trm or unknown: hrm-train's ``arch.name`` or the reference trainers'
model class), ``recipe.*`` (the recipe the run was made from: the `recipe` block hrm-train's
presets write into the config, else the published recipe of the task for that architecture:
HRM's README for HRM, TinyRecursiveModels' README for TRM), ``fit.*`` (the recipe fitted to
this run: ``fit.lr`` at the run's batch size, ``fit.lr_warmup_steps`` at most a tenth of the
run) and ``world_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hrm_doctor.engine.expr import MissingName


@dataclass(frozen=True)
class Recipe:
    """A published recipe (sapientinc/HRM or TinyRecursiveModels README), the anchor for
    suggested overrides."""

    name: str
    lr: float
    lr_lo: float
    lr_hi: float
    puzzle_emb_lr: float
    weight_decay: float
    puzzle_emb_weight_decay: float
    global_batch_size: int
    eval_interval: int
    lr_warmup_steps: int = 2000
    ema: bool = False
    """The recipe evaluates an exponential moving average of the weights (TRM: all of them)."""
    ema_rate: float = 0.999

    def get(self, key: str) -> Any:
        if not hasattr(self, key):
            raise MissingName(f"recipe.{key}")
        return getattr(self, key)

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> Recipe | None:
        """The `recipe` block of an hrm-train config (its preset's own settings)."""
        try:
            lr = float(block["lr"])
            return cls(
                str(block.get("name", "preset")),
                lr,
                lr,
                lr,
                float(block["puzzle_emb_lr"]),
                float(block["weight_decay"]),
                float(block["puzzle_emb_weight_decay"]),
                int(block["global_batch_size"]),
                int(block["eval_interval"]),
                int(block.get("lr_warmup_steps", 2000)),
                bool(block.get("ema", False)),
                float(block.get("ema_rate", 0.999)),
            )
        except (KeyError, TypeError, ValueError):
            return None


RECIPES: dict[str, Recipe] = {
    # Sudoku-Extreme 1k: lr 7e-5 (1 GPU, batch 384) .. 1e-4 (8 GPUs, batch 768), wd 1.0 both.
    "sudoku": Recipe("Sudoku-Extreme 1k", 1e-4, 7e-5, 1e-4, 1e-4, 1.0, 1.0, 768, 2000),
    # Maze 30x30 hard 1k: the Sudoku-1k recipe.
    "maze": Recipe("Maze 30x30 hard 1k", 1e-4, 7e-5, 1e-4, 1e-4, 1.0, 1.0, 768, 2000),
    # ARC-1/2: lr 1e-4, puzzle-embedding lr 1e-2 (one id per augmented puzzle), wd 0.1.
    "arc": Recipe("ARC-1 / ARC-2", 1e-4, 1e-4, 1e-4, 1e-2, 0.1, 0.1, 768, 10000),
}
# A patch never asks for a warmup longer than this share of the run's steps.
WARMUP_SHARE_MAX = 0.1


TRM_RECIPES: dict[str, Recipe] = {
    # TinyRecursiveModels README: Sudoku-Extreme (mlp_t) and Maze-Hard at 50000 epochs, eval
    # every 5000, lr and emb lr 1e-4, weight decays 1.0; ARC-1/2 with ConceptARC on the
    # defaults (lr 1e-4, emb lr 1e-2, wd 0.1); EMA 0.999 everywhere.
    "sudoku": Recipe(
        "TRM Sudoku-Extreme 1k", 1e-4, 1e-4, 1e-4, 1e-4, 1.0, 1.0, 768, 5000, ema=True
    ),
    "maze": Recipe("TRM Maze-Hard 30x30", 1e-4, 1e-4, 1e-4, 1e-4, 1.0, 1.0, 768, 5000, ema=True),
    "arc": Recipe(
        "TRM ARC-1 / ARC-2 + ConceptARC", 1e-4, 1e-4, 1e-4, 1e-2, 0.1, 0.1, 768, 10000, ema=True
    ),  # fmt: skip
}
ARCHITECTURES = ("hrm", "trm")


def detect_architecture(config: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """hrm, trm or unknown: hrm-train's `arch.name` (hrm_v1, trm), the reference trainers'
    (`recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1`, `...hrm@Hierarchical...`),
    or TRM-only arch keys; a run with no arch at all is unknown."""
    for source in (meta.get("architecture"), config.get("architecture")):
        if isinstance(source, str) and source.lower() in ARCHITECTURES:
            return source.lower()
    try:
        arch = lookup_dotted(config, "arch")
    except MissingName:
        arch = None
    if isinstance(arch, str):  # a flat config: arch is the name itself
        arch = {"name": arch}
    if not isinstance(arch, Mapping):
        flat = {k[len("arch.") :]: v for k, v in config.items() if k.startswith("arch.")}
        arch = flat or None
    if arch is None:
        return "unknown"
    name = str(arch.get("name", "")).lower()
    module = name.split("@")[0].split(".")[-1]  # trm, trm_singlez, trm_hier6, hrm_v1, hrm
    if module.startswith("trm") or "tinyrecursive" in name:
        return "trm"
    if "mlp_t" in arch or "no_ACT_continue" in arch:
        return "trm"
    return "hrm"


def detect_task(config: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """sudoku, maze, arc or unknown, from an explicit `task` key or the data path's name."""
    for source in (meta.get("task"), config.get("task")):
        if isinstance(source, str) and source.lower() in RECIPES:
            return source.lower()
    paths = config.get("data_paths")  # the reference TRM trainer: a list of dataset dirs
    first = paths[0] if isinstance(paths, list) and paths else None
    path = str(config.get("data_path") or first or meta.get("data_path") or "").lower()
    for task in ("sudoku", "maze", "arc"):
        if task in path:
            return task
    return "unknown"


def lookup_dotted(tree: Mapping[str, Any], key: str) -> Any:
    """`tree["a"]["b"]` for "a.b", or a flat `tree["a.b"]` (imported runs flatten keys)."""
    if key in tree:
        return tree[key]
    node: Any = tree
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise MissingName(key)
    return node


@dataclass(frozen=True)
class RunContext:
    """The run's config and metadata, seen through the names that rule expressions use."""

    config: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    world_size: int = 1

    @property
    def task(self) -> str:
        return detect_task(self.config, self.meta)

    @property
    def architecture(self) -> str:
        return detect_architecture(self.config, self.meta)

    @property
    def recipe(self) -> Recipe | None:
        """The run's own recipe (hrm-train presets record it), else the task's published one
        for the run's architecture."""
        block = self.config.get("recipe")
        if isinstance(block, Mapping):
            own = Recipe.from_config(block)
            if own is not None:
                return own
        recipes = TRM_RECIPES if self.architecture == "trm" else RECIPES
        return recipes.get(self.task)

    def fit(self, key: str) -> Any:
        """The recipe fitted to this run: `lr` scaled to the run's batch size (the square root
        rule of Adam-type optimizers), `lr_warmup_steps` at most a tenth of the run's steps,
        `puzzle_emb_lr` the recipe's (SignSGD steps do not depend on the batch)."""
        recipe = self.recipe
        if recipe is None:
            raise MissingName(f"fit.{key}")
        if key == "lr":
            batch = self.config.get("global_batch_size")
            if isinstance(batch, int | float) and batch > 0:
                return recipe.lr * (float(batch) / recipe.global_batch_size) ** 0.5
            return recipe.lr
        if key == "lr_warmup_steps":
            total = self.meta.get("total_steps")
            if isinstance(total, int | float) and total > 0:
                return int(min(recipe.lr_warmup_steps, max(1, round(WARMUP_SHARE_MAX * total))))
            return recipe.lr_warmup_steps
        if key == "puzzle_emb_lr":
            return recipe.puzzle_emb_lr
        raise MissingName(f"fit.{key}")

    def lookup(self, name: str) -> Any:
        if name == "task":
            return self.task
        if name == "architecture":
            return self.architecture
        if name == "world_size":
            return self.world_size
        if name.startswith("fit."):
            return self.fit(name[len("fit.") :])
        if name.startswith("recipe."):
            recipe = self.recipe
            if recipe is None:
                raise MissingName(name)
            return recipe.get(name[len("recipe.") :])
        if name.startswith("meta."):
            return lookup_dotted(self.meta, name[len("meta.") :])
        if name.startswith("cfg."):
            name = name[len("cfg.") :]
        return lookup_dotted(self.config, name)
