"""The search space: YAML parsing with file:line errors, the presets, suggestion via Optuna."""

from __future__ import annotations

import pytest

from hrm_doctor.errors import UserError
from hrm_doctor.tune.space import (
    PRESET_SPACES,
    default_space,
    format_override,
    load_space,
    parse_space,
    preset_of,
)

GOOD = """\
# lr against the embedding lr, and the cycles
lr: {log: [1.0e-5, 1.0]}
weight_decay: {uniform: [0.0, 1.0]}
arch.H_cycles: {int: [1, 3]}
arch.L_cycles: {choice: [1, 2, 4]}
"""


def test_a_space_file_gives_each_key_its_kind_and_range():
    space = parse_space(GOOD, "space.yaml")
    assert [(p.key, p.kind) for p in space.params] == [
        ("lr", "log"),
        ("weight_decay", "uniform"),
        ("arch.H_cycles", "int"),
        ("arch.L_cycles", "choice"),
    ]
    assert space.params[0].low == 1e-5 and space.params[0].high == 1.0
    assert space.to_json()["arch.L_cycles"] == {"choice": [1, 2, 4]}


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("lr: {log: [0, 1.0]}\n", "space.yaml:1:1", "log range needs low > 0"),
        ("lr: {log: [1.0e-5, 1.0]}\nwd: {uniform: [1.0, 0.5]}\n", "space.yaml:2:1", "low (1.0)"),
        ("lr: {log: [1.0e-5, 1.0]}\n\nwd: {normal: [0, 1]}\n", "space.yaml:3:1", "exactly one of"),
        ("lr: {choice: []}\n", "space.yaml:1:1", "non-empty list"),
        ("lr: {int: [1.5, 3]}\n", "space.yaml:1:1", "whole numbers"),
        ("lr: {log: [1.0e-5]}\n", "space.yaml:1:1", "[low, high]"),
        ("'bad key': {choice: [1]}\n", "space.yaml:1:1", "not a Hydra key"),
        ("lr: {log: [1.0e-5, 1.0]\n", "space.yaml:2:1", ""),  # YAML syntax
        ("- lr\n", "space.yaml:1:1", "expected a mapping"),
        ("", "space.yaml:1:1", "empty search space"),
    ],
)
def test_a_bad_space_is_one_error_naming_file_and_line(text, where, what):
    with pytest.raises(UserError) as err:
        parse_space(text, "space.yaml")
    message = str(err.value)
    assert message.startswith(where), message
    assert what in message
    assert "\n" not in message


def test_a_missing_space_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_space(tmp_path / "nope.yaml")


def test_every_preset_has_a_valid_default_space_over_the_recipe_keys():
    for name in PRESET_SPACES:
        space = default_space(name)
        keys = [p.key for p in space.params]
        assert keys == [
            "lr",
            "puzzle_emb_lr",
            "weight_decay",
            "puzzle_emb_weight_decay",
            "arch.halt_exploration_prob",
        ]
        assert "arch.H_cycles" in [p.key for p in default_space(name, cycles=True).params]
    assert default_space("no-such-preset").source == "preset sudoku_extreme_1k"


def test_the_preset_is_read_from_the_training_command():
    assert preset_of(["hrm-train", "experiment=smoke", "lr=1"]) == "smoke"
    assert preset_of(["hrm-train", "+task=arc1"]) == "arc1"
    assert preset_of(["hrm-train", "lr=1"]) is None


def test_suggestions_become_hydra_overrides():
    import optuna

    space = parse_space(GOOD, "space.yaml")
    trial = optuna.trial.FixedTrial(
        {"lr": 3e-4, "weight_decay": 0.5, "arch.H_cycles": 2, "arch.L_cycles": 4}
    )
    values = space.suggest(trial)
    assert [format_override(k, v) for k, v in values.items()] == [
        "lr=0.0003",
        "weight_decay=0.5",
        "arch.H_cycles=2",
        "arch.L_cycles=4",
    ]
    assert format_override("x", True) == "x=true" and format_override("x", None) == "x=null"


def test_grid_needs_choices_only():
    assert parse_space("lr: {choice: [1, 2]}\n", "s.yaml").grid() == {"lr": [1, 2]}
    with pytest.raises(UserError, match="grid needs choices only"):
        parse_space(GOOD, "s.yaml").grid()


HYDRA_SWEEPER = """\
# a Hydra config with the Optuna sweeper's space, as Hydra users already have it
defaults:
  - override hydra/sweeper: optuna
hydra:
  sweeper:
    params:
      lr: tag(log, interval(1e-5, 1e-3))
      weight_decay: interval(0.0, 1.0)
      arch.H_cycles: choice(1, 2, 4)
      arch.L_cycles: range(1, 4)
      global_batch_size: range(64, 256, step=64)
      arch.hidden_size: tag(log, interval(64, 512))
      arch.pos_encodings: choice(rope, learned)
"""


def test_the_hydra_optuna_sweeper_syntax_is_read_with_the_sweepers_meaning():
    space = parse_space(HYDRA_SWEEPER, "config.yaml")
    got = {p.key: p.to_json() for p in space.params}
    assert got == {
        "lr": {"log": [1e-5, 1e-3]},
        "weight_decay": {"uniform": [0.0, 1.0]},
        "arch.H_cycles": {"choice": [1, 2, 4]},
        "arch.L_cycles": {"int": [1.0, 4.0]},  # the sweeper's range includes its stop
        "global_batch_size": {"int": [64.0, 256.0], "step": 64},
        "arch.hidden_size": {"int": [64.0, 512.0], "log": True},
        "arch.pos_encodings": {"choice": ["rope", "learned"]},
    }


def test_sweeper_values_become_trial_values_in_range():
    optuna = pytest.importorskip("optuna")
    space = parse_space(HYDRA_SWEEPER, "config.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = space.suggest(study.ask())
        assert 1e-5 <= values["lr"] <= 1e-3
        assert values["arch.L_cycles"] in (1, 2, 3, 4)
        assert values["global_batch_size"] in (64, 128, 192, 256)
        assert 64 <= values["arch.hidden_size"] <= 512
        assert values["arch.pos_encodings"] in ("rope", "learned")


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("lr: tag(log, interval(1e-5))\n", "interval(low, high) takes two numbers"),
        ("lr: choice(1, 2\n", "expected ')'"),
        ("lr: normal(0, 1)\n", "exactly one of"),  # not a sweep at all: a plain string
        ("lr: interval(1e-3, 1e-5)\n", "low (0.001) must be below high"),
        ("lr: tag(log, interval(0.0, 1.0))\n", "log range needs low > 0"),
        ("lr: range(1, 4, step=x)\n", "range(start, stop, step=1) takes numbers"),
        ("lr: choice(1, 2) extra\n", "unexpected 'extra'"),
    ],
)
def test_a_bad_sweep_is_one_error_naming_file_line_and_key(line, what):
    with pytest.raises(UserError) as err:
        parse_space(line, "space.yaml")
    message = str(err.value)
    assert message.startswith("space.yaml:1:1: lr") or message.startswith("space.yaml:1:1"), message
    assert what in message, message
    assert "\n" not in message


def test_native_int_entries_take_step_and_log():
    space = parse_space("n: {int: [1, 64], log: true}\nm: {int: [0, 10], step: 2}\n", "s.yaml")
    assert [(p.kind, p.log, p.step) for p in space.params] == [
        ("int", True, None),
        ("int", False, 2),
    ]
    with pytest.raises(UserError, match="`log` goes with int only"):
        parse_space("x: {uniform: [0, 1], log: true}\n", "s.yaml")
