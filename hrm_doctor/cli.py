"""The `hrm-doctor` command line: a thin `main(argv) -> int` over the verbs in `commands/`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hrm_doctor import __version__
from hrm_doctor.commands import COMMAND_MODULES
from hrm_doctor.errors import UserError

EXAMPLES = """\
examples:
  hrm-doctor info runs/exp42           what a run is: steps, ranks, metrics, size, writer status
  hrm-doctor runs runs/                a table of every run under a root
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags already; make the message one line naming the verb."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hrm-doctor",
        description="The doctor for Hierarchical Reasoning Model training runs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hrm-doctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"hrm_doctor.commands.{name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EXAMPLES", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"hrm-doctor {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
