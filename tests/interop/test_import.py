"""`hrm-doctor import`: foreign runs become run directories that explain diagnoses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from interop_helpers import BAD_STEP

from hrm_doctor import RunReader
from hrm_doctor.cli import main
from hrm_doctor.interop.wandb_log import find_log_file


def explain_json(run: Path, capsys) -> dict:
    capsys.readouterr()
    main(["explain", "--run", str(run), "--format", "json", "--fail-on", "never"])
    return json.loads(capsys.readouterr().out)


def nonfinite_steps(report: dict) -> list[int]:
    return [f["first_step"] for f in report["findings"] if f["category"] == "nonfinite"]


def test_wandb_offline_run_imported_and_diagnosed(wandb_run, tmp_path, capsys):
    run = tmp_path / "ref"
    assert main(["import", "wandb", str(wandb_run), str(run)]) == 0
    assert "imported 100 step(s)" in capsys.readouterr().out
    report = explain_json(run, capsys)
    assert report["steps"] == 100
    assert nonfinite_steps(report) == [BAD_STEP]
    reader = RunReader(run)
    df = reader.scalars()
    assert list(df["step"]) == list(range(100))
    assert {"train/lm_loss", "train/q_halt_loss", "train/lr", "eval/all/accuracy"} <= set(df)
    assert reader.config["global_batch_size"] == 768
    assert reader.config["arch"] == {"H_cycles": 2, "L_cycles": 2}
    assert len(reader.config["note"]) == 70_000  # a record spanning three 32 KiB blocks
    assert reader.meta["num_params"] == 27_275_266
    assert reader.meta["imported_from"]["wandb_version"].startswith("0.31")


def test_tensorboard_logdir_imported_and_diagnosed(tb_logdir, tmp_path, capsys):
    run = tmp_path / "tb"
    assert main(["import", "tensorboard", str(tb_logdir), str(run)]) == 0
    report = explain_json(run, capsys)
    assert report["steps"] == 100
    assert nonfinite_steps(report) == [BAD_STEP]
    df = RunReader(run).scalars()
    assert df.loc[df["step"] == 10, "grad/hist/mean"].item() == pytest.approx(4.5)
    assert df.loc[df["step"] == 10, "grad/hist/max"].item() == pytest.approx(9.0)


def test_import_in_pieces_equals_import_at_once(wandb_run, tmp_path, capsys):
    """The cursor: importing a prefix, then the rest, gives the same run as one import."""
    log = find_log_file(wandb_run.resolve())
    data = log.read_bytes()
    src = tmp_path / "offline-run-20250101_000000-abc" / log.name
    src.parent.mkdir()
    src.write_bytes(data[: len(data) // 2])
    run = tmp_path / "pieces"
    assert main(["import", "wandb", str(src.parent), str(run), "--allow-partial"]) == 0
    first = RunReader(run).scalars()["step"].max()
    assert 0 < first < 99
    src.write_bytes(data)
    assert main(["import", "wandb", str(src.parent), str(run)]) == 0
    assert "appended" in capsys.readouterr().out
    whole = tmp_path / "whole"
    assert main(["import", "wandb", str(wandb_run), str(whole)]) == 0
    a, b = RunReader(run).scalars(), RunReader(whole).scalars()
    assert list(a["step"]) == list(range(100))
    assert a[sorted(a.columns)].equals(b[sorted(b.columns)])


def test_name_map_renames_and_drops(tb_logdir, tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("train/count: null\ngrad/hist/*: grad/norm/{1}\n")
    run = tmp_path / "mapped"
    assert main(["import", "tensorboard", str(tb_logdir), str(run), "--map", str(names)]) == 0
    cols = set(RunReader(run).scalars())
    assert "train/count" not in cols and "grad/hist/mean" not in cols
    assert {"grad/norm/mean", "grad/norm/max"} <= cols


def _error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def _copy_run(wandb_run: Path, tmp_path: Path) -> tuple[Path, bytes]:
    log = find_log_file(wandb_run.resolve())
    d = tmp_path / "offline-run-20250101_000000-bad"
    d.mkdir()
    return d / log.name, log.read_bytes()


def test_truncated_wandb_log_is_a_one_line_error(wandb_run, tmp_path, capsys):
    path, data = _copy_run(wandb_run, tmp_path)
    path.write_bytes(data[: len(data) - 100])
    err = _error(["import", "wandb", str(path.parent), str(tmp_path / "r")], capsys)
    assert str(path) in err and "truncated" in err
    assert not (tmp_path / "r").exists()  # nothing half-made left behind
    path.write_bytes(data[:5])
    assert "truncated" in _error(["import", "wandb", str(path.parent), str(tmp_path / "r")], capsys)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: b"garbage!" * 100, "not a W&B transaction log"),
        (lambda d: d[:6] + b"\x07" + d[7:], "format version 7 is not supported"),
        (lambda d: d[:200] + bytes([d[200] ^ 0xFF]) + d[201:], "corrupt W&B log"),
    ],
)
def test_damaged_wandb_log_is_a_one_line_error(wandb_run, tmp_path, capsys, damage, expected):
    path, data = _copy_run(wandb_run, tmp_path)
    path.write_bytes(damage(data))
    err = _error(["import", "wandb", str(path.parent), str(tmp_path / "r")], capsys)
    assert expected in err and str(path) in err


def test_neither_format_is_a_one_line_error(tb_logdir, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("hello")
    err = _error(["import", "wandb", str(plain), str(tmp_path / "r")], capsys)
    assert "not a W&B run directory" in err
    err = _error(["import", "tensorboard", str(plain), str(tmp_path / "r")], capsys)
    assert "not a TensorBoard logdir" in err
    bad_tb = tmp_path / "badtb"
    bad_tb.mkdir()
    (bad_tb / "events.out.tfevents.1.host").write_bytes(b"\x01" * 64)
    err = _error(["import", "tensorboard", str(bad_tb), str(tmp_path / "r")], capsys)
    assert "corrupt TensorBoard event file" in err
    err = _error(["import", "wandb", "nope/nope", str(tmp_path / "r")], capsys)
    assert "nope/nope" in err


def test_reference_trm_run_imported_and_diagnosed_as_trm(wandb_trm_run, tmp_path, capsys):
    """TinyRecursiveModels' pretrain.py names and config: imported, recognised as TRM (its
    recipe, its rules), the HRM-only rules skipped with a note."""
    run = tmp_path / "trm"
    assert main(["import", "wandb", str(wandb_trm_run), str(run)]) == 0
    report = explain_json(run, capsys)
    assert report["steps"] == 100 and nonfinite_steps(report) == [BAD_STEP]
    ids = {f["rule"] for f in report["findings"]}
    assert "trm-no-ema" in ids  # the TRM pack knows the run (ema off, unlike the recipes)
    assert not {"lr-far-from-recipe", "weight-decay-far-from-recipe"} & ids  # the TRM recipe
    notes = {n["rule"]: n["message"] for n in report["notes"]}
    assert "q-target-drift" in notes  # no Q-continue target on TRM: said once
    df = RunReader(run).scalars()
    assert "train/q_continue_loss" not in df and "train/q_halt_loss" in df
    assert df["eval/arc/pass@2"].dropna().tolist() == pytest.approx([0.02] * 10)  # ARC/pass@K
    assert not any(c.startswith("ARC") for c in df)
    assert RunReader(run).meta["num_params"] == 5_028_866


def test_import_speed_path_matches_the_protobuf_path(wandb_run, wandb_trm_run):
    """The numpy decoding of history and summary gives what wandb's protobuf classes give."""
    from hrm_doctor.interop import wandb_fast
    from hrm_doctor.interop.wandb_log import decode_records, read_records
    from hrm_doctor.interop.wandb_source import WandbRunSource, _decode_fast

    for src in (wandb_run, wandb_trm_run):
        records = read_records(find_log_file(src.resolve())).records
        block, slow_indices, _ = _decode_fast(records)
        kinds = wandb_fast.Joined.of(records).kinds()
        assert len(block.steps) == 100 and not block.fallback  # every history record fast
        assert not any(kinds[i] == wandb_fast.HISTORY for i in slow_indices)
        slow = [v for k, v in decode_records(records) if k == "history"]
        summary: dict = {}
        for kind, value in decode_records(records):
            if kind == "summary":
                summary.update(value)
        batch = WandbRunSource(src).read_new({}, final=True)
        cols = batch.columns
        assert list(cols.steps) == [row.step for row in slow]
        for i, row in enumerate(slow):
            got = {n: cols.values[i, j] for j, n in enumerate(cols.names) if cols.present[i, j]}
            assert got.keys() == row.values.keys()
            for name, value in row.values.items():
                assert got[name] == pytest.approx(value, nan_ok=True), (i, name)
        assert batch.summary == summary
