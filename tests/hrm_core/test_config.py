"""Every shipped config composes and validates; presets match the published recipes; a wrong
key, type or value is a one-line error naming the key; the cross-checks hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from hrm_core.config import (
    CONF_DIR,
    TrainConfig,
    compose_config,
    load_config,
    validate_config,
)
from hrm_core.data import PuzzleDataset, SudokuBuildOptions, ensure_dataset
from hrm_doctor.errors import UserError

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
ARCHS = sorted(p.stem for p in (CONF_DIR / "arch").glob("*.yaml"))

# DESIGN.md, "Command lines": keys that hrm-train must have.
DESIGN_KEYS = [
    "run_dir", "data_path", "seed", "lr", "puzzle_emb_lr", "weight_decay",
    "puzzle_emb_weight_decay", "lr_warmup_steps", "lr_min_ratio", "global_batch_size", "epochs",
    "eval_interval", "grad_clip_norm", "arch.H_cycles", "arch.L_cycles", "arch.H_layers",
    "arch.L_layers", "arch.hidden_size", "arch.halt_max_steps", "arch.halt_exploration_prob",
    "probe.enabled", "wandb.mode",
]  # fmt: skip

# HRM_NOTES, "Defaults and the published recipes".
RECIPES = {
    "sudoku_extreme_1k_laptop": dict(epochs=20000, eval_interval=2000, global_batch_size=384,
                                     lr=7e-5, puzzle_emb_lr=7e-5, weight_decay=1.0,
                                     puzzle_emb_weight_decay=1.0),
    "sudoku_extreme_1k": dict(epochs=20000, eval_interval=2000, global_batch_size=768, lr=1e-4,
                              puzzle_emb_lr=1e-4, weight_decay=1.0, puzzle_emb_weight_decay=1.0),
    "maze_30x30_hard_1k": dict(epochs=20000, eval_interval=2000, global_batch_size=768, lr=1e-4,
                               puzzle_emb_lr=1e-4, weight_decay=1.0, puzzle_emb_weight_decay=1.0),
    "arc1": dict(epochs=100000, eval_interval=10000, global_batch_size=768, lr=1e-4,
                 puzzle_emb_lr=1e-2, weight_decay=0.1, puzzle_emb_weight_decay=0.1),
    "arc2": dict(epochs=100000, eval_interval=10000, global_batch_size=768, lr=1e-4,
                 puzzle_emb_lr=1e-2, weight_decay=0.1, puzzle_emb_weight_decay=0.1),
    "sudoku_hard_full": dict(epochs=100, eval_interval=10, global_batch_size=2304, lr=3e-4,
                             puzzle_emb_lr=3e-4, weight_decay=0.1, puzzle_emb_weight_decay=0.1,
                             lr_min_ratio=0.1),
}  # fmt: skip


def lookup(config: TrainConfig, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def error_of(overrides: list[str]) -> str:
    with pytest.raises(UserError) as info:
        load_config(overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("task", TASKS)
def test_every_task_preset_composes_and_matches_its_recipe(task):
    config = load_config([f"task={task}"])
    for key, value in RECIPES[task].items():
        assert getattr(config, key) == pytest.approx(value), key
    assert config.data_path.startswith("data/") and config.data_build is None
    assert config.wandb.mode == "offline"


@pytest.mark.parametrize(
    "preset", [f"task={t}" for t in TASKS] + [f"experiment={e}" for e in EXPERIMENTS]
)
def test_every_shipped_preset_is_its_own_recipe(preset):
    """hrm-doctor compares a run with `recipe` and fits its patches to it: a preset run as
    shipped is on its recipe (no "far from the recipe" on it), and an override is not."""
    config = load_config([preset, "data_path=x"])
    recipe = config.recipe
    assert recipe is not None and recipe.name
    for key in ("lr", "puzzle_emb_lr", "weight_decay", "puzzle_emb_weight_decay",
                "global_batch_size", "lr_warmup_steps", "eval_interval"):  # fmt: skip
        assert getattr(recipe, key) == pytest.approx(getattr(config, key)), key
    changed = load_config([preset, "data_path=x", f"lr={config.lr * 10}"])
    assert changed.recipe.lr == pytest.approx(config.lr)  # the recipe stays the preset's


def test_every_recipe_has_a_preset():
    assert sorted(RECIPES) == TASKS


def test_sudoku_hard_full_changes_the_architecture():
    arch = load_config(["task=sudoku_hard_full"]).arch
    assert (arch.loss_type, arch.L_cycles, arch.halt_max_steps) == ("softmax", 8, 8)
    assert arch.pos_encodings == "learned" and arch.H_cycles == 2


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    assert isinstance(load_config([f"experiment={experiment}"]), TrainConfig)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_composes(arch):
    assert load_config([f"arch={arch}", "data_path=x"]).arch.name == arch


def test_defaults_match_the_reference_and_the_typed_model():
    config = load_config(["data_path=data/x", "run_dir=runs/x"])
    assert config == TrainConfig(run_dir="runs/x", data_path="data/x")  # YAML == field defaults
    assert (config.global_batch_size, config.epochs, config.eval_interval) == (768, 100000, 10000)
    assert (config.lr, config.lr_min_ratio, config.lr_warmup_steps) == (1e-4, 1.0, 2000)
    assert (config.beta1, config.beta2, config.weight_decay) == (0.9, 0.95, 0.1)
    assert (config.puzzle_emb_lr, config.puzzle_emb_weight_decay, config.seed) == (1e-2, 0.1, 0)
    assert config.grad_clip_norm is None and config.probe.enabled
    arch = config.arch
    assert (arch.H_cycles, arch.L_cycles, arch.H_layers, arch.L_layers) == (2, 2, 4, 4)
    assert (arch.hidden_size, arch.num_heads, arch.expansion, arch.puzzle_emb_ndim) == (
        512, 8, 4.0, 512,
    )  # fmt: skip
    assert (arch.halt_max_steps, arch.halt_exploration_prob) == (16, 0.1)
    assert (arch.pos_encodings, arch.loss_type) == ("rope", "stablemax")


def test_design_keys_exist_and_take_overrides():
    config = load_config(["experiment=smoke"])
    for key in DESIGN_KEYS:
        lookup(config, key)
    overridden = load_config(["experiment=smoke", "grad_clip_norm=1.0", "arch.hidden_size=32"])
    assert overridden.grad_clip_norm == 1.0 and overridden.arch.hidden_size == 32
    assert overridden.arch.puzzle_emb_ndim == 32  # follows hidden_size


def test_smoke_is_a_tiny_cpu_run_that_builds_its_data(tmp_path):
    config = load_config(["experiment=smoke", f"data_path={tmp_path / 'smoke'}"])
    assert config.device == "cpu" and config.wandb.mode == "disabled"
    assert config.arch.hidden_size <= 128 and config.arch.H_layers <= 2
    assert isinstance(config.data_build, SudokuBuildOptions) and config.data_build.box_size == 2
    path = ensure_dataset(config.data_path, config.data_build)
    meta = PuzzleDataset.open(path, "train").metadata
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers) == (6, 16, 1)
    config.check_world_size(2)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["lrr=1"], "config key 'lrr': unknown key (did you mean 'lr'?)"),
        (["+lrr=1"], "config key 'lrr': unknown key (did you mean 'lr'?)"),
        (["arch.hidden_sze=3"], "config key 'arch.hidden_sze': unknown key (did you mean"),
        (["lr=abc"], "config key 'lr': input should be a valid number"),
        (["lr=-1"], "config key 'lr': input should be greater than 0"),
        (["arch.loss_type=hinge"], "config key 'arch.loss_type': input should be 'stablemax'"),
        (["wandb.mode=cloud"], "config key 'wandb.mode'"),
        (["probe.every=0"], "config key 'probe.every'"),
        (["data_build.box_size=abc"], "config key 'data_build.box_size': input should be"),
        (["+data_build.boxes=2"], "config key 'data_build.boxes': unknown key"),
        (["data_build.box_size=7"], "config key 'data_build': box_size must be 2, 3 or 4"),
        (["epochs=10"], "config: epochs (10) must be a multiple of eval_interval (4)"),
        (["arch.num_heads=5"], "must be a multiple of arch.num_heads (5)"),
        (["task=nope"], "Could not find 'task/nope'"),
        (["run_dir=${nope}"], "config key 'run_dir': Interpolation key 'nope' not found"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_key(overrides, expected):
    assert expected in error_of(["experiment=smoke", *overrides])


def test_missing_data_path_says_what_to_do():
    assert "config key 'data_path': missing value; set it" in error_of([])


def test_world_size_cross_check():
    config = load_config(["experiment=smoke", "grad_accum_steps=2"])
    config.check_world_size(4)  # 64 = 4 ranks x 2 micro-batches x 8
    with pytest.raises(UserError, match="config key 'global_batch_size': 64 is not divisible"):
        config.check_world_size(3)


def test_validate_config_takes_a_composed_config_and_works_inside_hydra():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    composed = compose_config(["experiment=smoke"])
    raw = OmegaConf.to_container(composed, resolve=False)
    assert "${now:" in raw["run_dir"]  # resolved only on validation
    assert validate_config(composed).run_dir.startswith("runs/smoke-")
    with initialize_config_dir(config_dir=str(Path(CONF_DIR)), version_base="1.3"):
        assert load_config(["task=arc1"]).puzzle_emb_lr == 1e-2
        assert GlobalHydra.instance().is_initialized()  # the caller's Hydra is left as it was
    plain = {"run_dir": "r", "data_path": "d", "hydra": {"ignored": True}}
    assert validate_config(plain).data_path == "d"
