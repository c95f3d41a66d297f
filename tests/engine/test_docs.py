"""The docs cannot rot: every built-in rule is in docs/rules.md, the example packs lint, the
example rule tests pass, and every `hrm-doctor` command in docs/ci.md parses with the real CLI."""

import re
import shlex
from pathlib import Path

import yaml

from hrm_doctor.cli import build_parser
from hrm_doctor.engine.packs import lint_pack, load_rule_set
from hrm_doctor.ruletest import run_test_file

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_every_builtin_rule_is_documented():
    text = (DOCS / "rules.md").read_text()
    missing = [r.spec.id for r in load_rule_set().rules if f"`{r.spec.id}`" not in text]
    assert missing == []


def test_the_example_pack_and_rule_tests_of_rules_md_work(tmp_path):
    blocks = _blocks((DOCS / "rules.md").read_text(), "yaml")
    pack, tests = blocks[0], blocks[1]
    path = tmp_path / "mine.yaml"
    path.write_text(pack)
    assert lint_pack(path) == []
    (tmp_path / "my_rules.yaml").write_text(pack)
    results = run_test_file(tests, str(tmp_path / "t.yaml"), base_dir=tmp_path)
    assert [r.problems for r in results if not r.ok] == []


def test_the_ci_examples_are_valid(tmp_path):
    text = (DOCS / "ci.md").read_text()
    blocks = _blocks(text, "yaml")
    workflows = [yaml.safe_load(b) for b in blocks]
    site = tmp_path / "hrm-rules.yaml"
    site.write_text(blocks[-1])
    assert lint_pack(site) == []
    parser = build_parser()
    lines = [
        ln.strip().removeprefix("- ").removeprefix("run: ") for b in blocks for ln in b.splitlines()
    ]
    commands = lines + [ln.strip() for b in _blocks(text, "") for ln in b.splitlines()]
    commands = [
        c.split(">>")[0].lstrip("- ")
        for c in commands
        if c.lstrip("- ").startswith("hrm-doctor ") and "|" not in c  # not the synopsis
    ]
    assert len(commands) >= 6 and workflows
    for cmd in commands:
        argv = shlex.split(cmd.replace("$BASE", "").replace("ci/hrm-rules.yaml", str(site)))[1:]
        parser.parse_args(argv)
