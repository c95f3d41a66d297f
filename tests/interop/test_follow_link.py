"""`hrm-doctor watch wandb/latest-run`: when the trainer starts a new run, W&B moves the link;
the follower resolves it again and converts the new run into a directory of its own, which the
daemon then watches next to the old one."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from interop_helpers import BAD_STEP

from hrm_doctor import RunReader
from hrm_doctor.engine.packs import load_rule_set
from hrm_doctor.interop.follow import open_follower
from hrm_doctor.watch.console import PlainConsole
from hrm_doctor.watch.daemon import Daemon
from hrm_doctor.watch.source import ALL


def fake_wandb_dir(tmp_path: Path, *runs: Path) -> tuple[Path, list[Path]]:
    """A wandb/ directory holding copies of `runs` (distinct names), latest-run -> the first."""
    wandb_dir = tmp_path / "wandb"
    copies = []
    for i, run in enumerate(runs):
        copy = wandb_dir / f"offline-run-2026010{i + 1}_000000-run{i}"
        shutil.copytree(run.resolve(), copy, symlinks=True)
        copies.append(copy)
    (wandb_dir / "latest-run").symlink_to(copies[0].name)
    return wandb_dir, copies


def move_link(wandb_dir: Path, run: Path) -> None:
    link = wandb_dir / "latest-run"
    link.unlink()
    link.symlink_to(run.name)


def test_the_follower_moves_with_the_link(wandb_run, wandb_trm_run, tmp_path):
    wandb_dir, (first, second) = fake_wandb_dir(tmp_path, wandb_run, wandb_trm_run)
    follower = open_follower(wandb_dir / "latest-run")
    root = wandb_dir / "hrm-doctor"  # the default: one converted run per W&B run
    assert follower.run_dir == root and follower.per_run
    assert follower.update() == 100
    move_link(wandb_dir, second)
    assert follower.update() == 100  # the new run, from its start
    follower.close()
    a, b = RunReader(root / first.name), RunReader(root / second.name)
    assert len(a.scalars()) == len(b.scalars()) == 100
    assert a.meta["num_params"] == 27_275_266 and b.meta["num_params"] == 5_028_866
    assert a.status == "finished"  # the old run's import was finished when the link moved


def test_the_daemon_watches_each_run_the_link_points_to(wandb_run, wandb_trm_run, tmp_path):
    wandb_dir, (first, second) = fake_wandb_dir(tmp_path, wandb_run, wandb_trm_run)
    into = tmp_path / "converted"
    out = io.StringIO()
    daemon = Daemon(
        wandb_dir / "latest-run", load_rule_set(), console=PlainConsole(out), poll=True, into=into
    )
    try:
        daemon.turn({ALL})
        daemon.settle()
        move_link(wandb_dir, second)
        daemon.turn({ALL})
        daemon.settle()
    finally:
        daemon.close()
    for run in (first, second):
        lines = (into / run.name / "findings.jsonl").read_text().splitlines()
        found = [json.loads(line) for line in lines]
        assert [f["first_step"] for f in found if f["category"] == "nonfinite"] == [BAD_STEP]
    assert f"watching {second.name}" in out.getvalue()
