"""`hrm-doctor import wandb|tensorboard SRC RUN`: turn another trainer's run into a run directory."""

from __future__ import annotations

import argparse

NAME = "import"
HELP = "turn a W&B run or a TensorBoard logdir into a run directory, so it can be diagnosed"
EXAMPLES = """\
examples:
  hrm-doctor import wandb wandb/latest-run runs/hrm-ref        the reference pretrain.py's run, offline
  hrm-doctor import wandb wandb/offline-run-20250101_120000-abc123 runs/abc123 --map names.yaml
  hrm-doctor import wandb my-entity/hrm/abc123 runs/abc123     an online run (wandb.Api; needs a login)
  hrm-doctor import tensorboard logs/fork-exp1 runs/fork-exp1  scalars and histograms of event files
  hrm-doctor explain --run runs/hrm-ref                        then diagnose it like any run
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("wandb", "tensorboard"), help="the source's format")
    parser.add_argument(
        "src",
        metavar="SRC",
        help="a W&B run directory (wandb/run-*, wandb/offline-run-*, wandb/latest-run) or "
        "entity/project/run_id; a TensorBoard logdir",
    )
    parser.add_argument("run", metavar="RUN", help="the run directory to write")
    parser.add_argument(
        "--map",
        metavar="FILE",
        help="YAML name mapping {source_name_or_glob: metric_name | null} for non-reference names",
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="import the complete records of a log that ends in a cut-off record",
    )


def run(args: argparse.Namespace) -> int:
    import shutil
    import time
    from pathlib import Path

    from hrm_doctor.errors import UserError
    from hrm_doctor.interop.follow import open_source
    from hrm_doctor.interop.importer import CURSOR_FILE, Importer
    from hrm_doctor.interop.mapping import load_name_map

    run_dir = Path(args.run)
    name_map = load_name_map(args.map)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a directory")
    fresh = not (run_dir / CURSOR_FILE).exists()
    if fresh and run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: exists and is not an imported run: choose a new RUN")
    t0 = time.perf_counter()
    source = open_source(args.format, args.src, live=False)
    importer = Importer(source, run_dir, name_map)
    try:
        steps = importer.update(final=True)
        if importer.partial_tail and not args.allow_partial:
            raise UserError(
                f"{source.identity}: truncated: the log ends in a cut-off record (a run still "
                "being written, or a writer that was killed); --allow-partial imports the "
                "complete records, `hrm-doctor watch SRC` follows a live run"
            )
    except BaseException:
        importer.close()
        if fresh and run_dir.exists():
            shutil.rmtree(run_dir)  # leave nothing half-made behind
        raise
    importer.close()
    dt = time.perf_counter() - t0
    verb = "imported" if fresh else "appended"
    last = importer.last_step
    print(f"{verb} {steps} step(s) into {run_dir} (last step {last}) in {dt:.2f} s")
    if importer.state.get("rows_dropped"):
        print(f"note: {importer.state['rows_dropped']} row(s) with a step going backwards dropped")
    return 0
