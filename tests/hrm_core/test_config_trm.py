"""`arch=trm`: the TRM presets compose, match the TinyRecursiveModels README recipes, and leave
the HRM presets as they were; TRM keys are errors on hrm_v1."""

from __future__ import annotations

import pytest

from hrm_core.config import CONF_DIR, TRMArchConfig, load_config
from hrm_doctor.errors import UserError

TASKS = {p.stem for p in (CONF_DIR / "task").glob("*.yaml")}
ARCHS = {p.stem for p in (CONF_DIR / "arch").glob("*.yaml")}

# TinyRecursiveModels README, "Experiments" (the cfg_pretrain.yaml defaults where it says nothing).
TRM_RECIPES = {
    "sudoku_extreme_1k": dict(epochs=50000, eval_interval=5000, lr=1e-4, puzzle_emb_lr=1e-4,
                              weight_decay=1.0, puzzle_emb_weight_decay=1.0, ema=True,
                              arch=dict(mlp_t=True, pos_encodings="none", L_layers=2, H_cycles=3,
                                        L_cycles=6)),
    "maze_30x30_hard_1k": dict(epochs=50000, eval_interval=5000, lr=1e-4, puzzle_emb_lr=1e-4,
                               weight_decay=1.0, puzzle_emb_weight_decay=1.0, ema=True,
                               arch=dict(mlp_t=False, pos_encodings="rope", L_layers=2,
                                         H_cycles=3, L_cycles=4)),
    "arc1": dict(epochs=100000, eval_interval=10000, lr=1e-4, puzzle_emb_lr=1e-2,
                 weight_decay=0.1, puzzle_emb_weight_decay=0.1, ema=True,
                 data_path="data/arc1concept-aug-1000",
                 arch=dict(mlp_t=False, L_layers=2, H_cycles=3, L_cycles=4)),
    "arc2": dict(epochs=100000, eval_interval=10000, lr=1e-4, puzzle_emb_lr=1e-2,
                 weight_decay=0.1, puzzle_emb_weight_decay=0.1, ema=True,
                 data_path="data/arc2concept-aug-1000",
                 arch=dict(mlp_t=False, L_layers=2, H_cycles=3, L_cycles=4)),
}  # fmt: skip


@pytest.mark.parametrize("task", sorted(TRM_RECIPES))
def test_task_with_arch_trm_is_the_trm_recipe(task):
    config = load_config([f"task={task}", "arch=trm"])
    expected = dict(TRM_RECIPES[task])
    arch = expected.pop("arch")
    assert config.arch.name == "trm" and config.global_batch_size == 768
    for key, value in expected.items():
        assert getattr(config, key) == value, key
    for key, value in arch.items():
        assert getattr(config.arch, key) == value, f"arch.{key}"
    assert (config.arch.hidden_size, config.arch.halt_max_steps) == (512, 16)
    assert (config.arch.puzzle_emb_len, config.arch.no_ACT_continue) == (16, True)


def test_every_arch_recipe_names_a_task_and_an_arch():
    for path in (CONF_DIR / "arch_task").glob("*.yaml"):
        task, _, arch = path.stem.rpartition("_")
        assert task in TASKS and arch in ARCHS, path.name


def test_hrm_presets_are_unchanged_by_the_trm_recipes():
    config = load_config(["task=sudoku_extreme_1k"])
    assert config.arch.name == "hrm_v1" and config.ema is False
    assert (config.epochs, config.eval_interval, config.arch.H_cycles) == (20000, 2000, 2)


def test_arch_trm_defaults_are_the_reference_trm_yaml():
    config = load_config(["arch=trm", "data_path=x", "run_dir=r"])
    assert config.arch == TRMArchConfig()  # YAML == field defaults
    assert (config.arch.H_cycles, config.arch.L_cycles, config.arch.L_layers) == (3, 6, 2)


def test_trm_smoke_preset():
    config = load_config(["experiment=smoke", "arch=trm"])
    assert config.arch.name == "trm" and config.arch.mlp_t and config.ema
    assert config.device == "cpu" and config.data_build is not None
    overridden = load_config(["experiment=smoke", "arch=trm", "arch.L_cycles=3"])
    assert overridden.arch.L_cycles == 3  # command-line overrides still win


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["arch.mlp_t=true"], "config key 'arch.mlp_t': unknown key"),
        (["arch=trm", "arch.pos_encodings=alibi"], "config key 'arch.pos_encodings'"),
        (["arch=trm", "ema_rate=1.0"], "config key 'ema_rate'"),
        (["arch=trm", "arch.mlp_tt=true"], "did you mean 'arch.mlp_t'"),
    ],
)
def test_trm_keys_are_checked(overrides, expected):
    with pytest.raises(UserError) as info:
        load_config(["experiment=smoke", *overrides])
    assert expected in str(info.value)
