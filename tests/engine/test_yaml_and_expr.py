"""The YAML loader keeps positions and refuses unsafe input; the expression language is safe."""

import numpy as np
import pytest

from hrm_doctor.engine import expr as ex
from hrm_doctor.engine.yamlpos import PosDict, load_yaml_text, locate
from hrm_doctor.errors import UserError


def test_positions_of_keys_and_values():
    data = load_yaml_text(
        "a: 1\nrules:\n  - id: x\n    detector: {type: spike, window: 5}\n", "p.yaml"
    )
    assert isinstance(data, PosDict)
    assert str(locate(data, ("rules", 0, "detector", "window"))) == "p.yaml:4:37"
    assert str(locate(data, ("rules", 0, "id"), key=True)) == "p.yaml:3:5"
    # a path beyond the data points at the deepest existing item
    assert str(locate(data, ("rules", 0, "detector", "nope"))) == "p.yaml:4:15"


def test_duplicate_keys_are_errors_with_both_positions():
    with pytest.raises(UserError, match=r"p.yaml:2:1: duplicate key 'a' \(first at p.yaml:1:1\)"):
        load_yaml_text("a: 1\na: 2\n", "p.yaml")


def test_syntax_errors_name_file_line_and_column():
    with pytest.raises(UserError, match=r"^p.yaml:2:\d+: "):
        load_yaml_text("a: [1, 2\nb: 3\n", "p.yaml")


def test_python_tags_are_refused():
    with pytest.raises(UserError, match="p.yaml:1:4"):
        load_yaml_text("a: !!python/object/apply:os.system ['echo hacked']\n", "p.yaml")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("arch.halt_max_steps > 1", True),
        ("lr * 0.5", 5e-5),
        ("task == 'sudoku' and not (lr > 1e-3)", True),
        ("grad_clip_norm == null", True),
        ("default(missing.key, 3) + 1", 4),
        ("default(lr, 3)", 1e-4),
        ("max(lr, 2e-4) / 2", 1e-4),
        ("'cuda' in device", True),
        ("task in ['arc', 'maze']", False),
        ("missing.key is set", False),
        ("lr is set", True),
    ],
)
def test_expressions_evaluate_against_config(text, value):
    cfg = {
        "lr": 1e-4,
        "grad_clip_norm": None,
        "arch": {"halt_max_steps": 16},
        "task": "sudoku",
        "device": "cuda:0",
    }

    def lookup(name):
        node = cfg
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ex.MissingName(name)
            node = node[part]
        return node

    got = ex.parse(text).evaluate(lookup)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


def test_missing_names_raise_and_are_listed():
    e = ex.parse("arch.halt_max_steps > 1 and $train/steps < 2")
    assert e.names == {"arch.halt_max_steps"} and e.metrics == {"train/steps"}
    with pytest.raises(ex.MissingName, match="arch.halt_max_steps"):
        e.evaluate(lambda n: (_ for _ in ()).throw(ex.MissingName(n)))


def test_metric_expressions_are_vectorised():
    e = ex.parse("$sys/comm_s / $sys/step_time_s > 0.5")
    arrays = {"sys/comm_s": np.array([0.1, 0.4]), "sys/step_time_s": np.array([0.4, 0.5])}
    assert e.evaluate(lambda n: None, arrays.__getitem__).tolist() == [False, True]


@pytest.mark.parametrize(
    ("text", "col"),
    [("lr >", 5), ("lr + * 2", 6), ("__import__('os')", 1), ("lr[0]", 3), ("foo(1)", 1)],
)
def test_bad_expressions_name_the_column(text, col):
    with pytest.raises(ex.ExprError) as info:
        ex.parse(text)
    assert info.value.col == col


def test_dotted_names_walk_config_mappings_only():
    """`lr.__class__` is a config key, looked up in dicts: no attribute access can happen."""
    from hrm_doctor.engine.context import RunContext

    ctx = RunContext({"lr": 1e-4})
    with pytest.raises(ex.MissingName):
        ex.parse("lr.__class__").evaluate(ctx.lookup)
