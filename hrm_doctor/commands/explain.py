"""`hrm-doctor explain --run RUN`: a one-shot diagnosis with an exit code, for CI."""

from __future__ import annotations

import argparse
import sys

from hrm_doctor.commands import add_rules_argument

NAME = "explain"
HELP = "diagnose a run once: findings, evidence and suggested fixes; exit 1 at --fail-on"
EXAMPLES = """\
exit status: 0 no finding at or above --fail-on, 1 at least one, 2 bad input

examples:
  hrm-doctor explain --run runs/exp42
  hrm-doctor explain --run runs/exp42 --format markdown >> "$GITHUB_STEP_SUMMARY"
  hrm-doctor explain --run runs/exp42 --format junit --out hrm-doctor.xml --fail-on warning
  hrm-doctor explain --run runs/exp43 --baseline runs/exp42 --format html --out report.html
  hrm-doctor explain --run runs/exp42 --rules core act my_rules.yaml
"""
FORMATS = ("text", "markdown", "json", "junit", "github", "html")
FAIL_ON = ("critical", "warning", "info", "never")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN", help="the run directory")
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="critical",
        help="exit 1 when a finding is at or above this severity (default: critical)",
    )
    parser.add_argument(
        "--baseline",
        metavar="OTHER_RUN",
        help="compare with another run: what got worse, config diff",
    )
    parser.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    add_rules_argument(parser)


def run(args: argparse.Namespace) -> int:
    import time

    from hrm_doctor.diagnosis import compare, diagnose
    from hrm_doctor.engine.packs import load_rule_set
    from hrm_doctor.errors import UserError
    from hrm_doctor.render import render
    from hrm_doctor.severity import SEVERITY_ORDER
    from hrm_doctor.telemetry import RunReader

    rule_set = load_rule_set(args.rules)
    now = time.time()
    compare_too = args.baseline is not None
    report = diagnose(
        args.run, rule_set, now=now, windows=args.format == "html", summaries=compare_too
    )
    if args.baseline:
        base = diagnose(args.baseline, rule_set, now=now, summaries=True)
        report.baseline = compare(
            report, base, RunReader(args.run).config, RunReader(args.baseline).config
        )
    color = args.out is None and args.format == "text" and sys.stdout.isatty()
    text = render(report, args.format, color=color)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise UserError(
                f"{args.out}: cannot write ({exc.strerror or exc.__class__.__name__})"
            ) from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if args.fail_on == "never":
        return 0
    limit = SEVERITY_ORDER[args.fail_on]
    return 1 if any(f.severity_rank >= limit for f in report.findings) else 0
