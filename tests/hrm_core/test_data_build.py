"""The build command line (`python -m hrm_core.data`) and on-demand builds from a config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hrm_core.data import (
    PuzzleDataset,
    SudokuBuildOptions,
    build_dataset,
    ensure_dataset,
    make_build_options,
)
from hrm_core.data.__main__ import main
from hrm_doctor.errors import UserError

TINY = ["--box-size", "2", "--train-size", "8", "--test-size", "4", "--num-aug", "1"]


def test_cli_builds_and_inspects(tmp_path, capsys):
    out = tmp_path / "s4"
    assert main(["build", "sudoku", "--out", str(out), "--quiet", *TINY]) == 0
    assert "built sudoku dataset" in capsys.readouterr().out
    assert PuzzleDataset.open(out, "train").metadata.total_groups == 8
    recorded = json.loads((out / "build.json").read_text())["builder"]
    assert recorded["box_size"] == 2 and recorded["num_aug"] == 1
    assert main(["info", str(out)]) == 0
    assert "'vocab_size': 6" in capsys.readouterr().out
    maze = tmp_path / "maze"
    argv = ["build", "maze", "--out", str(maze), "--quiet", "--size", "7", "--train-size", "2"]
    assert main([*argv, "--test-size", "1", "--dihedral-aug"]) == 0
    assert PuzzleDataset.open(maze, "train").sets["all"].num_puzzles == 16


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    out = tmp_path / "s4"
    assert main(["build", "sudoku", "--out", str(out), "--quiet", *TINY]) == 0
    capsys.readouterr()
    assert main(["build", "sudoku", "--out", str(out), "--quiet", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists and is not empty" in err
    assert main(["build", "sudoku", "--out", str(tmp_path / "x"), "--box-size", "7"]) == 2
    assert "box_size must be 2, 3 or 4" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "dataset directory not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["build", "sudoku", "--out", str(tmp_path / "y"), "--box-sise", "2"])
    assert info.value.code == 2
    assert not (tmp_path / "x").exists()  # a failed build leaves nothing behind
    assert [p.name for p in tmp_path.iterdir()] == ["s4"]


def test_module_entry_point_shows_progress(tmp_path):
    out = tmp_path / "s4"
    done = subprocess.run(
        [sys.executable, "-m", "hrm_core.data", "build", "sudoku", "--out", str(out), *TINY],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sudoku 4x4 train" in done.stderr


def test_ensure_dataset_builds_once_and_checks_the_options(tmp_path):
    options = SudokuBuildOptions(box_size=2, train_size=8, test_size=4, num_aug=0)
    path = tmp_path / "data" / "smoke"
    assert ensure_dataset(path, options) == path
    stamp = (path / "train/all__inputs.npy").stat().st_mtime_ns
    assert ensure_dataset(path, options) == path  # reused, not rebuilt
    assert (path / "train/all__inputs.npy").stat().st_mtime_ns == stamp
    other = SudokuBuildOptions(box_size=2, train_size=9, test_size=4, num_aug=0)
    with pytest.raises(UserError, match="was built with"):
        ensure_dataset(path, other)
    with pytest.raises(UserError, match="no data_build"):
        ensure_dataset(tmp_path / "absent", None)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["smoke"]


def test_make_build_options_names_the_bad_option(tmp_path):
    assert make_build_options("maze", size=9).size == 9
    with pytest.raises(UserError, match="unknown option 'sise'"):
        make_build_options("maze", sise=9)
    with pytest.raises(UserError, match="unknown dataset kind 'chess'"):
        make_build_options("chess")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        build_dataset(make_build_options("sudoku", box_size=2), tmp_path / "full")


def test_a_dataset_built_before_new_options_existed_is_still_reused(tmp_path):
    """build.json of an older build lacks the options added since: their defaults apply."""
    options = SudokuBuildOptions(box_size=2, train_size=8, test_size=4, num_aug=0)
    path = ensure_dataset(tmp_path / "old", options)
    info = json.loads((path / "build.json").read_text())
    for key in ("difficulty", "source", "subsample_size", "min_difficulty"):
        del info["builder"][key]
    (path / "build.json").write_text(json.dumps(info))
    assert ensure_dataset(path, options) == path
