"""From `hrm-train ARGV` to validated jobs: the Hydra app around the recipe.

Before Hydra runs, the overrides are composed and validated (every value of every swept key),
so that a bad key or value is one line and exit 2 (Hydra alone prints a multi-line report and
exits 1). run_dir, which may hold `${now:...}`, is resolved once and passed to Hydra explicitly;
under torchrun rank 0's value is broadcast, so every rank writes the same run directory, and only
rank 0 writes Hydra's own outputs (.hydra/, hrm-train.log) there. In a multirun, run_dir is the
sweep root and each job's output directory (ROOT/0, ROOT/1, ...) becomes its run_dir.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

# Hydra flags that print something instead of running: leave those to Hydra untouched.
HYDRA_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}
HYDRA_FLAGS_WITH_VALUE = {
    "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--package", "-p",
    "--experimental-rerun", "--shell-completion", "-sc",
}  # fmt: skip


def run_hydra_app(argv: list[str], job: Callable[[Any], int]) -> int:
    """Validate `argv`, then run `job(TrainConfig)` for each Hydra job; the worst exit code.

    A first word `evaluate` runs a checkpoint's evaluation instead (hrm_core/evaluate.py).
    """
    if argv[:1] == ["evaluate"]:
        from hrm_core.evaluate import run

        return run(list(argv[1:]))
    try:
        argv = prepare_argv(list(argv))
    except UserError as exc:
        print(f"hrm-train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    codes: list[int] = [0]
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "hrm-train", *argv]  # Hydra parses sys.argv
    try:
        _hydra_main(job, codes)()
    except BrokenPipeError:  # `hrm-train --help | head`
        return 0
    finally:
        sys.argv = saved_argv
        shutdown_process_group()
    return max(codes)


def _hydra_main(job: Callable[[Any], int], codes: list[int]) -> Callable[[], None]:
    import hydra

    from hrm_core.config import CONF_DIR

    def task(cfg: Any) -> None:
        codes.append(run_job(cfg, job))

    return hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)


def run_job(cfg: Any, job: Callable[[Any], int]) -> int:
    """One Hydra job: validate, put a multirun job in its own directory, run; errors a user can
    cause are one line and exit 2 (a job's failure does not stop the other jobs of a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hrm_core.config import validate_config

    try:
        config = validate_config(cfg)
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # each job trains in its own dir under the root
            config = config.model_copy(update={"run_dir": hydra_cfg.runtime.output_dir})
        return job(config)
    except UserError as exc:
        print(f"hrm-train: error: {exc}", file=sys.stderr)
        return exc.exit_code


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, config overrides)."""
    flags, overrides = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            flags.append(arg)
            if arg in HYDRA_FLAGS_WITH_VALUE and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def quote(value: str) -> str:
    """A path as a Hydra override value (quoted when it holds grammar characters)."""
    if re.fullmatch(r"[\w./+@~:-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """Override lists that cover every value of every sweep once (for validation only)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # Hydra's grammar errors: one line
        raise UserError(f"config overrides: {str(exc).splitlines()[0]}") from None
    sweeps = [(i, o) for i, o in enumerate(parsed) if o.is_sweep_override()]
    if not sweeps:
        return [overrides]
    base = list(overrides)
    choices = {}
    for i, o in sweeps:
        try:
            values = [str(v) for v in o.sweep_string_iterator()]
        except Exception:  # e.g. glob(): its options are known to Hydra only; it checks them
            values = []
        if not values:
            base[i] = ""
            continue
        choices[i] = values
        base[i] = f"{o.get_key_element()}={values[0]}"
    variants = [base]
    for i, values in choices.items():
        for value in values[1:]:
            variant = list(base)
            variant[i] = f"{parsed[i].get_key_element()}={value}"
            variants.append(variant)
    return [[o for o in variant if o] for variant in variants]


def prepare_argv(argv: list[str]) -> list[str]:
    """Validate the overrides; return argv with run_dir resolved (and rank > 0's Hydra quiet)."""
    from hrm_core.config import compose_config, validate_config
    from hrm_core.trainer.distributed import env_rank

    flags, overrides = split_argv(argv)
    if any(f in HYDRA_INFO_FLAGS or f.startswith("--cfg") for f in flags):
        return argv
    multirun = "-m" in flags or "--multirun" in flags
    config_overrides = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    config = None
    for variant in sweep_variants(config_overrides):
        config = validate_config(compose_config(variant))
    assert config is not None
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if multirun and world_size > 1:
        raise UserError("multirun (-m) cannot run under torchrun; sweep outside it")
    run_dir = str(Path(config.run_dir).absolute())
    if world_size > 1:
        run_dir = broadcast_run_dir(config.device, run_dir)
    kept = [o for o in overrides if not re.match(r"^\+*run_dir=", o)]
    extra = [f"run_dir={quote(run_dir)}"]
    if env_rank() != 0:
        # One copy of Hydra's outputs per run: rank 0 writes .hydra/ and hrm-train.log.
        extra += ["hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    return [*flags, *kept, *extra]


def broadcast_run_dir(device: str, run_dir: str) -> str:
    """Rank 0's run_dir on every rank (joins the torchrun process group to do it)."""
    from hrm_core.trainer.distributed import broadcast_json, init_distributed

    info = init_distributed(device)
    return broadcast_json(info, run_dir)


def shutdown_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
