"""Rule packs: every built-in pack is valid and documented; errors name file:line:col; user
packs add rules and override built-in thresholds by id; the registry is the only way in."""

import textwrap
from pathlib import Path

import pytest

import rules
from hrm_doctor.engine.detectors import REGISTRY
from hrm_doctor.engine.packs import builtin_sources, lint_pack, load_rule_set
from hrm_doctor.engine.schema import CATEGORIES
from hrm_doctor.errors import UserError

BUILTIN = sorted(builtin_sources())


def _pack(tmp_path: Path, body: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


RULE = """\
schema: 1
pack: mine
version: "0.1"
rules:
  - id: my-rule
    category: explosion
    severity: warning
    description: A test rule that watches the gradient norm for a spike.
    metrics: [grad/norm]
    detector: {type: spike, factor: 5}
    message: "grad/norm spiked to {value}"
    suggestion: {rationale: r, monitor: m, fallback: f}
"""


def test_the_packs_ship_as_package_data():
    names = [f.name for f in rules.pack_files()]
    assert names == sorted(names) and {"core.yaml", "act.yaml", "config.yaml"} <= set(names)
    assert {f.name for f in rules.test_files()} >= {"core.yaml", "act.yaml"}


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_pack_lints_clean(name):
    assert lint_pack(name) == []


def test_every_builtin_rule_is_documented_and_uses_the_contract_vocabulary():
    rs = load_rule_set()
    assert len(rs.rules) >= 50
    for r in rs.rules:
        spec = r.spec
        assert spec.category in CATEGORIES
        assert spec.detector.type in REGISTRY
        text = " ".join(spec.description.split())
        assert "Why it matters" in text or "why it matters" in text, spec.id
        assert "Remedy" in text or "remedy" in text or spec.severity == "info", spec.id
        assert spec.suggestion.rationale and spec.suggestion.monitor and spec.suggestion.fallback


def test_unknown_detector_is_reported_at_its_position(tmp_path):
    path = _pack(tmp_path, RULE.replace("type: spike", "type: spik"))
    (problem,) = lint_pack(path)
    assert problem.startswith(f"{path}:10:") and "unknown detector 'spik'" in problem


def test_bad_parameter_and_unknown_key_are_reported_with_positions(tmp_path):
    path = _pack(
        tmp_path,
        RULE.replace("factor: 5", "factor: 5, windw: 3").replace(
            "severity: warning", "severity: loud"
        ),
    )
    problems = lint_pack(path)
    assert any(p.startswith(f"{path}:7:15: rules[0].severity:") for p in problems), problems
    path = _pack(tmp_path, RULE.replace("factor: 5", "factor: 5, windw: 3"))
    (problem,) = lint_pack(path)
    assert f"{path}:10:" in problem and "unknown key 'windw'" in problem


def test_bad_expression_is_reported(tmp_path):
    path = _pack(
        tmp_path,
        RULE.replace(
            "    metrics: [grad/norm]\n", "    metrics: [grad/norm]\n    when: ['lr >']\n"
        ),
    )
    (problem,) = lint_pack(path)
    assert problem.startswith(f"{path}:10:") and "unexpected end of expression" in problem


def test_a_hot_suggestion_may_only_change_hot_keys(tmp_path):
    body = RULE.replace(
        "suggestion: {rationale: r, monitor: m, fallback: f}",
        "suggestion: {overrides: [{key: arch.H_cycles, set: 1}], apply: hot, rationale: r, monitor: m, fallback: f}",
    )
    (problem,) = lint_pack(_pack(tmp_path, body))
    assert "'arch.H_cycles' is not a hot key" in problem


def test_load_errors_are_one_line_user_errors(tmp_path):
    path = _pack(tmp_path, RULE.replace("type: spike", "type: spik"))
    with pytest.raises(UserError) as info:
        load_rule_set([str(path)])
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}:10:")
    with pytest.raises(UserError, match="no such file"):
        load_rule_set([str(tmp_path / "missing.yaml")])
    with pytest.raises(UserError, match="built-in: config, core"):
        load_rule_set(["nonsense"])


def test_a_user_pack_adds_rules_on_top_of_the_builtins(tmp_path):
    rs = load_rule_set([str(_pack(tmp_path, RULE))])
    assert rs.get("my-rule").pack == "mine" and rs.get("grad-explosion") is not None
    assert [p.name for p in rs.packs][-1] == "mine" and not rs.packs[-1].builtin


def test_a_user_pack_overrides_a_builtin_threshold_by_id(tmp_path):
    body = """\
    schema: 1
    pack: site
    version: "1"
    overrides:
      - id: grad-explosion
        severity: warning
        detector: {factor: 20}
      - id: loss-spike
        enabled: false
    """
    rs = load_rule_set([str(_pack(tmp_path, body))])
    ge = rs.get("grad-explosion").spec
    assert ge.severity == "warning" and ge.detector.model_extra["factor"] == 20
    assert ge.detector.model_extra["window"] == 101  # the other parameters stay
    assert rs.get("loss-spike").spec.enabled is False


def test_overriding_an_unknown_rule_or_redefining_one_is_an_error(tmp_path):
    body = (
        'schema: 1\npack: site\nversion: "1"\noverrides:\n  - {id: no-such-rule, severity: info}\n'
    )
    with pytest.raises(
        UserError, match=r"site.yaml:5:10: overrides\[0\].id: no rule 'no-such-rule'"
    ):
        load_rule_set([str(_pack(tmp_path, body, "site.yaml"))])
    with pytest.raises(UserError, match="already defined in pack 'core'"):
        load_rule_set([str(_pack(tmp_path, RULE.replace("my-rule", "grad-explosion")))])
    with pytest.raises(UserError, match="factor"):
        bad = 'schema: 1\npack: s\nversion: "1"\noverrides:\n  - {id: grad-explosion, detector: {factor: 0.5}}\n'
        load_rule_set([str(_pack(tmp_path, bad, "bad.yaml"))])


def test_selecting_builtin_packs_by_name():
    rs = load_rule_set(["core", "act"])
    assert {r.pack for r in rs.rules} == {"core", "act"}


def test_unsupported_schema_version(tmp_path):
    (problem,) = lint_pack(_pack(tmp_path, RULE.replace("schema: 1", "schema: 2")))
    assert "schema 1" in problem and problem.startswith(f"{tmp_path / 'mine.yaml'}:1:9")
