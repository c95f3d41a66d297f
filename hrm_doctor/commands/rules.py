"""`hrm-doctor rules list | lint PACK | test [FILE...]`: the rule packs and their unit tests."""

from __future__ import annotations

import argparse

from hrm_doctor.commands import add_rules_argument

NAME = "rules"
HELP = "list the rule packs, validate a pack (file:line:col errors), run rule unit tests"
EXAMPLES = """\
examples:
  hrm-doctor rules list                  every built-in rule: id, pack, category, severity
  hrm-doctor rules list --rules my.yaml  ... with a user pack added
  hrm-doctor rules lint my_rules.yaml    exit 1 and one file:line:col line per problem
  hrm-doctor rules test                  the built-in packs' unit tests
  hrm-doctor rules test my_tests.yaml    series in, expected findings out (promtool style)
  hrm-doctor rules docs                  regenerate docs/packs/<pack>.md from the packs
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="rules_command",
        metavar="{list,lint,test,docs}",
        required=True,
        parser_class=type(parser),
    )
    p = sub.add_parser("list", help="list the packs and their rules")
    add_rules_argument(p)
    p.add_argument("--json", action="store_true", help="print the rules as JSON")
    p = sub.add_parser("lint", help="validate rule packs: exit 1 with file:line:col problems")
    p.add_argument(
        "packs", nargs="+", metavar="PACK", help="a rule-pack file or a built-in pack name"
    )
    p = sub.add_parser("test", help="run rule unit tests (default: the built-in packs' tests)")
    p.add_argument("files", nargs="*", metavar="FILE", help="rule test files (YAML)")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print every test, not only failures"
    )

    p = sub.add_parser("docs", help="write one Markdown page per built-in pack (docs/packs/)")
    p.add_argument("--out", default="docs/packs", help="directory (default: docs/packs)")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "lint": _lint, "test": _test, "docs": _docs}[args.rules_command](args)


def _docs(args: argparse.Namespace) -> int:
    from hrm_doctor.packdocs import write_pack_docs

    for path in write_pack_docs(args.out):
        print(path)
    return 0


def _list(args: argparse.Namespace) -> int:
    import json

    from hrm_doctor.engine.packs import load_rule_set

    rs = load_rule_set(args.rules)
    if args.json:
        out = [
            {
                "id": r.spec.id,
                "pack": r.pack,
                "category": r.spec.category,
                "severity": r.spec.severity,
                "metrics": r.spec.metrics or ([r.spec.value] if r.spec.value else []),
                "detector": r.spec.detector.type,
                "enabled": r.spec.enabled,
            }
            for r in rs.rules
        ]
        print(json.dumps(out, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    for pack in rs.packs:
        console.print(
            f"[bold]{pack.name}[/bold] {pack.version}  [dim]{escape(pack.source)}[/dim]"
            + ("" if pack.builtin else "  (user pack)")
        )
    table = Table(pad_edge=False)
    for col in ("rule", "pack", "category", "severity", "detector", "metrics"):
        table.add_column(col)
    for r in rs.rules:
        metrics = ", ".join(r.spec.metrics) or (
            r.spec.value or "(config)" if r.spec.detector.type == "config" else r.spec.value or "-"
        )
        if r.spec.detector.type == "stall":
            metrics = "(clock)"
        table.add_row(
            r.spec.id + ("" if r.spec.enabled else " (disabled)"),
            r.pack,
            r.spec.category,
            r.spec.severity,
            r.spec.detector.type,
            escape(metrics),
        )
    console.print(table)
    return 0


def _lint(args: argparse.Namespace) -> int:
    from hrm_doctor.engine.packs import lint_pack

    bad = 0
    for pack in args.packs:
        problems = lint_pack(pack)
        for p in problems:
            print(p)
        if problems:
            bad += 1
        else:
            print(f"{pack}: ok")
    return 1 if bad else 0


def _test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hrm_doctor.errors import UserError
    from hrm_doctor.ruletest import builtin_test_sources, run_test_file

    if args.files:
        sources = []
        for f in args.files:
            try:
                sources.append((f, Path(f).read_text(encoding="utf-8")))
            except FileNotFoundError:
                raise UserError(f"{f}: no such file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"{f}: cannot read ({exc.__class__.__name__})") from None
    else:
        sources = builtin_test_sources()
    passed = failed = 0
    for source, text in sources:
        base = Path(source).parent
        for result in run_test_file(text, source, base_dir=base):
            if result.ok:
                passed += 1
                if args.verbose:
                    print(f"ok    {result.file}: {result.name}")
            else:
                failed += 1
                print(f"FAIL  {result.file}: {result.name}")
                for p in result.problems:
                    print(f"        {p}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
