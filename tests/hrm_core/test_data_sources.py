"""Real sources: `build sudoku|maze|arc --source` gives the reference builders' output on the
same files (tests/hrm_core/fixtures/reference_sources), and bad files fail in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hrm_core.data import build_dataset, make_build_options
from hrm_core.data.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures" / "reference_sources"
CASES = {
    "sudoku": ("sudoku", ["--source", "sudoku", "--subsample-size", "7", "--num-aug", "2",
                          "--seed", "3"]),
    "sudoku_rated": ("sudoku", ["--source", "sudoku", "--min-difficulty", "2", "--num-aug", "0",
                                "--seed", "3"]),
    "maze": ("maze", ["--source", "maze", "--subsample-size", "4", "--dihedral-aug", "--seed",
                      "4"]),
    "arc": ("arc", ["--source", "ARC/data", "ConceptARC/corpus", "--num-aug", "2",
                    "--listing", "sorted"]),
}  # fmt: skip


def assert_same_as_reference(out: Path, name: str) -> None:
    expected = np.load(FIXTURES / "expected" / f"{name}.npz")
    for key in expected.files:
        mine = np.load(out / f"{key}.npy")
        assert mine.shape == expected[key].shape, key
        assert np.array_equal(mine, expected[key]), key
    meta = json.loads((FIXTURES / "expected" / f"{name}.json").read_text())
    assert json.loads((out / "identifiers.json").read_text()) == meta["identifiers"]
    for split in ("train", "test"):
        mine = json.loads((out / split / "dataset.json").read_text())
        mine.pop("total_puzzles")  # hrm_core also writes TRM's key
        assert mine == meta[split], split


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_builds_match_the_reference_builders(name, tmp_path, monkeypatch, capsys):
    kind, flags = CASES[name]
    monkeypatch.chdir(FIXTURES)
    out = tmp_path / name
    assert main(["build", kind, "--out", str(out), "--quiet", *flags]) == 0, capsys.readouterr()
    assert_same_as_reference(out, name)


def test_arc_listing_in_filesystem_order_reads_the_same_tasks(tmp_path):
    """The default listing (the reference's) may order folders differently, not the content."""
    options = make_build_options("arc", source=(str(FIXTURES / "ConceptARC/corpus"),), num_aug=1)
    out = build_dataset(options, tmp_path / "c")
    names = json.loads((out / "identifiers.json").read_text())
    assert sorted(n for n in names if "_" not in n) == [
        "<blank>", "AboveBelow1", "AboveBelow2", "Center1"
    ]  # fmt: skip
    assert not (out / "test").exists()  # ConceptARC only trains


def writable_copy(tmp_path: Path, what: str) -> Path:
    out = tmp_path / what
    shutil.copytree(FIXTURES / what, out)
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def error_of(kind: str, source: Path, tmp_path: Path, capsys, *extra: str) -> str:
    code = main(["build", kind, "--out", str(tmp_path / "out"), "--quiet", "--source",
                 str(source), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    return err


def test_bad_csv_rows_name_file_and_line(tmp_path, capsys):
    source = writable_copy(tmp_path, "sudoku")
    header, first, second, *rest = (source / "train.csv").read_text().splitlines()
    name, question, answer, rating = second.split(",")

    def write(row: str) -> None:
        (source / "train.csv").write_text("\n".join([header, first, row, *rest]) + "\n")

    write(f"{name},{question},{answer}")
    assert "train.csv:3: expected 4 columns" in error_of("sudoku", source, tmp_path, capsys)
    write(f"{name},x{question[1:]},{answer},{rating}")
    assert "train.csv:3: question holds 'x'" in error_of("sudoku", source, tmp_path, capsys)
    write(f"{name},{question},{answer}1,{rating}")
    assert "train.csv:3: answer has 82 characters, expected 81" in error_of(
        "sudoku", source, tmp_path, capsys
    )
    write(f"{name},{question},{answer},hard")
    assert "train.csv:3: rating 'hard' is not an integer" in error_of(
        "sudoku", source, tmp_path, capsys, "--min-difficulty", "1"
    )
    (source / "test.csv").unlink()
    assert "test.csv: file not found" in error_of("sudoku", source, tmp_path, capsys)
    assert "source directory not found" in error_of("maze", tmp_path / "nope", tmp_path, capsys)


def test_bad_maze_cells(tmp_path, capsys):
    source = writable_copy(tmp_path, "maze")
    text = (source / "test.csv").read_text().splitlines()
    text[2] = text[2].replace("#", "X", 1)
    (source / "test.csv").write_text("\n".join(text) + "\n")
    assert "test.csv:3: question holds 'X'" in error_of("maze", source, tmp_path, capsys)


def test_bad_arc_tasks_name_the_file(tmp_path, capsys):
    source = writable_copy(tmp_path, "ARC")
    task = source / "data/training/b0000001.json"
    good = task.read_text()
    task.write_text(good[:-5])
    assert "b0000001.json:1:" in error_of("arc", source / "data", tmp_path, capsys)
    raw = json.loads(good)
    raw["train"][0]["input"] = [[1, 2], [3]]
    task.write_text(json.dumps(raw))
    assert "b0000001.json: train[0].input: rows of different lengths" in error_of(
        "arc", source / "data", tmp_path, capsys
    )
    raw["train"][0]["input"] = [[12]]
    task.write_text(json.dumps(raw))
    assert "train[0].input: colours must be integers 0..9" in error_of(
        "arc", source / "data", tmp_path, capsys
    )
    task.write_text(json.dumps({"train": [], "extra": []}))
    assert "b0000001.json: unknown key 'extra'" in error_of(
        "arc", source / "data", tmp_path, capsys
    )
    evaluation = source / "data/evaluation/e1e1e1e1.json"
    evaluation.write_text(json.dumps({"train": json.loads(good)["train"], "test": []}))
    task.write_text(good)
    assert "e1e1e1e1.json: no 'test' pairs for the test split" in error_of(
        "arc", source / "data", tmp_path, capsys
    )
    empty = tmp_path / "empty"
    (empty / "training").mkdir(parents=True)
    assert "no task files" in error_of("arc", empty, tmp_path, capsys)
