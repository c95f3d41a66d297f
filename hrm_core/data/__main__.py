"""`python -m hrm_core.data build sudoku|maze|arc --out DIR [...]` and `... info DIR`.

The flags of each builder come from the fields of its options dataclass, so the command line,
the `data_build` config and the library cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from hrm_core.data.build import BUILDERS, build_dataset, make_build_options
from hrm_core.data.dataset import PuzzleDataset
from hrm_core.data.metadata import read_json
from hrm_core.data.progress import RichProgress
from hrm_core.data.writer import BUILD_INFO_FILE
from hrm_doctor.errors import UserError


class _Parser(argparse.ArgumentParser):
    """Bad flags: one line naming the command, exit 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_option_flags(parser: argparse.ArgumentParser, options_type: type) -> None:
    hints = typing.get_type_hints(options_type)
    for spec in dataclasses.fields(options_type):
        if spec.name == "kind":
            continue
        flag, hint = "--" + spec.name.replace("_", "-"), hints[spec.name]
        help_text = f"{spec.metadata.get('help', '')} (default: {spec.default})"
        args = typing.get_args(hint)
        if isinstance(hint, types.UnionType):  # `int | None`: parse as the non-None type
            hint = next(a for a in args if a is not type(None))
            args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:  # several values: `--source DIR [DIR ...]`
            parser.add_argument(
                flag, nargs="+", type=args[0], default=spec.default, help=help_text, metavar="DIR"
            )
        elif hint is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=spec.default, help=help_text
            )
        elif typing.get_origin(hint) is typing.Literal:
            parser.add_argument(flag, choices=args, default=spec.default, help=help_text)
        else:
            parser.add_argument(flag, type=hint, default=spec.default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m hrm_core.data", description="Build and inspect HRM datasets.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    build = commands.add_parser("build", help="build a seeded dataset in the reference format")
    kinds = build.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    for kind, (options_type, _) in BUILDERS.items():
        sub = kinds.add_parser(kind, help=(options_type.__doc__ or "").splitlines()[0])
        sub.add_argument("--out", required=True, help="dataset directory to create")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        _add_option_flags(sub, options_type)
    info = commands.add_parser("info", help="validate a dataset directory and print its metadata")
    info.add_argument("path", help="dataset directory")
    return parser


def _run_build(args: argparse.Namespace) -> int:
    options_type = BUILDERS[args.kind][0]
    names = [f.name for f in dataclasses.fields(options_type) if f.name != "kind"]
    values = {name: getattr(args, name) for name in names}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    options = make_build_options(args.kind, **values)
    if args.quiet:
        out = build_dataset(options, args.out)
    else:
        with RichProgress() as progress:
            out = build_dataset(options, args.out, progress)
    print(f"built {args.kind} dataset at {out}")
    info = read_json(out / BUILD_INFO_FILE)
    for lines in (info.get("difficulty") or {}).values() if isinstance(info, dict) else ():
        print("\n".join(lines))
    return 0


def _run_info(args: argparse.Namespace) -> int:
    for split in ("train", "test"):
        dataset = PuzzleDataset.open(args.path, split)
        meta: dict[str, Any] = dataclasses.asdict(dataset.metadata)
        sizes = {
            name: (s.num_groups, s.num_puzzles, s.num_examples) for name, s in dataset.sets.items()
        }
        print(f"{split}: {meta}")
        print(f"{split}: (groups, puzzles, examples) per set: {sizes}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run_build(args) if args.command == "build" else _run_info(args)
    except UserError as exc:
        print(f"python -m hrm_core.data {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
