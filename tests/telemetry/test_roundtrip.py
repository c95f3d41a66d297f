"""What goes in through RunWriter comes back through RunReader: values, schema growth, tensors,
ranks, resumes, and the writer's clear errors on bad input."""

import math
import time

import numpy as np
import pytest

from hrm_doctor import RunReader, RunWriter
from hrm_doctor.errors import UserError


def test_nan_and_inf_round_trip_exactly(tmp_path):
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.5, 3.4e38]
    with RunWriter(tmp_path) as w:
        for i, v in enumerate(values):
            w.log({"train/lm_loss": v}, step=i)
    df, logged = RunReader(tmp_path).scalars(with_mask=True)
    got = df["train/lm_loss"].to_numpy()
    assert np.isnan(got[0]) and logged[0, 0]
    assert got[1] == np.inf and got[2] == -np.inf
    assert np.signbit(got[4]) and got[5] == 1.5
    assert np.float32(3.4e38) == got[6]


def test_float32_values_round_trip_bit_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    with RunWriter(tmp_path) as w:
        for i, v in enumerate(x):
            w.log({"a": float(v), "b": v}, step=i)
    df = RunReader(tmp_path).scalars()
    assert (df["a"].to_numpy() == x).all() and (df["b"].to_numpy() == x).all()


def test_schema_grows_mid_run_and_missing_is_told_apart_from_nan(tmp_path):
    with RunWriter(tmp_path) as w:
        for i in range(30):
            m = {"train/lm_loss": 1.0}
            if i >= 10:
                m["grad/norm/H"] = float(i)
            if i % 10 == 9:
                m["eval/test/accuracy"] = math.nan if i == 19 else 0.5
            w.log(m, step=i)
            if i % 4 == 0:
                w.flush()
    df, logged = RunReader(tmp_path).scalars(with_mask=True)
    assert list(df.columns) == [
        "step",
        "rank",
        "train/lm_loss",
        "eval/test/accuracy",
        "grad/norm/H",
    ]
    assert df["grad/norm/H"].isna().sum() == 10 and not logged[:10, 2].any()
    ev = list(df.columns[2:]).index("eval/test/accuracy")
    assert logged[:, ev].sum() == 3 and logged[19, ev] and np.isnan(df["eval/test/accuracy"][19])


def test_same_step_logged_twice_is_one_row(tmp_path):
    with RunWriter(tmp_path) as w:
        w.log({"a": 1.0}, step=0)
        w.log({"b": 2.0}, step=0)
        w.log({"a": 3.0}, step=1)
        w.flush()
        w.log({"b": 4.0}, step=1)  # after a flush: the reader merges
        w.log({"a": 5.0}, step=2)
    df = RunReader(tmp_path).scalars()
    assert df["step"].tolist() == [0, 1, 2]
    assert df[["a", "b"]].to_numpy().tolist()[:2] == [[1.0, 2.0], [3.0, 4.0]]


def test_default_step_counts_up(tmp_path):
    with RunWriter(tmp_path) as w:
        for _ in range(3):
            w.log({"a": 1.0})
    assert RunReader(tmp_path).scalars()["step"].tolist() == [0, 1, 2]


def test_tensors_come_back_with_steps_and_ranks(tmp_path):
    torch = pytest.importorskip("torch")
    with RunWriter(tmp_path) as w:
        w.log(
            {"act/halt_steps": np.array([1, 2, 16]), "act/q_halt": torch.tensor([0.5, -1.0])},
            step=3,
        )
        w.log({"act/halt_steps": [4, 5], "train/lm_loss": torch.tensor(2.5)}, step=4)
    r = RunReader(tmp_path)
    t = r.tensors("act/halt_steps")
    assert t["step"].tolist() == [3, 4] and t["rank"].tolist() == [0, 0]
    assert t["values"][0].tolist() == [1, 2, 16] and t["values"][1].dtype == np.float32
    assert r.tensors("act/q_halt")["values"][0].tolist() == [0.5, -1.0]
    assert r.scalars()["train/lm_loss"].tolist() == [2.5]
    assert sorted(r.tensor_names) == ["act/halt_steps", "act/q_halt"]


def test_two_ranks_one_timeline(tmp_path):
    for rank in (1, 0):
        with RunWriter(tmp_path, rank=rank, world_size=2) as w:
            for i in range(5):
                w.log({"sys/step_time_s": 0.1 * (rank + 1)}, step=i)
    r = RunReader(tmp_path)
    df = r.scalars()
    assert df["step"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert df["rank"].tolist() == [0, 1] * 5
    agg = r.scalars(aggregate="max")
    assert list(agg.columns) == ["step", "sys/step_time_s"] and np.allclose(
        agg["sys/step_time_s"], 0.2
    )
    assert r.meta["world_size"] == 2 and r.ranks == [0, 1]


def test_resume_supersedes_later_steps_and_poll_reports_the_rollback(tmp_path):
    with RunWriter(tmp_path) as w:
        for i in range(10):
            w.log({"a": float(i)}, step=i)
    reader = RunReader(tmp_path)
    assert reader.poll()["step"].tolist() == list(range(10))
    with RunWriter(tmp_path, resume_from_step=6) as w:
        for i in range(6, 12):
            w.log({"a": -float(i)}, step=i)
    df = RunReader(tmp_path).scalars()
    assert df["step"].tolist() == list(range(12))
    assert df["a"].tolist() == [float(i) for i in range(6)] + [-float(i) for i in range(6, 12)]
    new = reader.poll()
    assert new.attrs["rollback"] == {0: 6}
    assert new["step"].tolist() == list(range(6, 12))
    lineage = reader.lineage
    assert [e["branch_step"] for e in lineage] == [0, 6]
    meta = reader.meta
    assert meta["sessions"] == 2


def test_resume_without_explicit_step_branches_at_first_logged_step(tmp_path):
    with RunWriter(tmp_path) as w:
        for i in range(10):
            w.log({"a": 1.0}, step=i)
    with RunWriter(tmp_path) as w:
        w.log({"a": 2.0}, step=4)
    df = RunReader(tmp_path).scalars()
    assert df["step"].tolist() == [0, 1, 2, 3, 4] and df["a"].tolist()[-1] == 2.0


def test_step_is_visible_without_flush(tmp_path):
    w = RunWriter(tmp_path)
    reader = RunReader(tmp_path)
    w.log({"a": 1.0}, step=0)
    t0 = time.monotonic()
    while reader.poll().empty:
        assert time.monotonic() - t0 < 5, "a logged step never became visible"
        time.sleep(0.01)
    w.close()


def test_poll_is_empty_when_nothing_new(tmp_path, make_run):
    make_run(tmp_path / "run", steps=10)
    reader = RunReader(tmp_path / "run")
    assert len(reader.poll()) == 10
    again = reader.poll()
    assert again.empty and list(again.columns)[:2] == ["step", "rank"]


def test_meta_records_what_the_contract_names(tmp_path):
    with RunWriter(tmp_path, config={"arch": {"hidden_size": 64}}, program="hrm-train") as w:
        w.set_meta(num_params=1234)
        w.log({"a": 1.0}, step=0)
    r = RunReader(tmp_path)
    m = r.meta
    for key in (
        "schema_version",
        "run_id",
        "start_time",
        "world_size",
        "program",
        "program_version",
    ):
        assert key in m
    assert m["program"] == "hrm-train" and m["num_params"] == 1234
    assert r.config == {"arch": {"hidden_size": 64}}
    assert r.status == "finished"


def test_metric_selection_by_glob(tmp_path):
    with RunWriter(tmp_path) as w:
        w.log({"grad/norm/H.0": 1.0, "grad/norm/H.1": 2.0, "grad/norm/L.0": 3.0}, step=0)
    df = RunReader(tmp_path).scalars(metrics=["grad/norm/H.*"])
    assert list(df.columns) == ["step", "rank", "grad/norm/H.0", "grad/norm/H.1"]


@pytest.mark.parametrize(
    "metrics, match",
    [
        ({"act/q": np.zeros((2, 2))}, "'act/q'.*1-D"),
        ({"train/loss": "high"}, "'train/loss'.*not numeric"),
        ({"train/loss": None}, "'train/loss'.*not numeric"),
        ({"train/loss": ["a", "b"]}, "'train/loss'.*non-numeric"),
        ({"bad name!": 1.0}, "'bad name!'.*letters, digits"),
        ({"step": 1.0}, "'step'.*reserved"),
        ({3: 1.0}, "3.*must be a string"),
        ({"x": np.array(["a"])}, "'x'.*not numeric"),
    ],
)
def test_bad_values_are_value_errors_naming_the_metric(tmp_path, metrics, match):
    with RunWriter(tmp_path) as w:
        with pytest.raises(ValueError, match=match):
            w.log(metrics, step=0)
        w.log({"ok": 1.0}, step=0)  # the writer still works afterwards
    assert RunReader(tmp_path).scalars()["ok"].tolist() == [1.0]


def test_step_going_backwards_is_a_value_error(tmp_path):
    with RunWriter(tmp_path) as w:
        w.log({"a": 1.0}, step=5)
        with pytest.raises(ValueError, match="step 4 goes backwards"):
            w.log({"a": 1.0}, step=4)
        with pytest.raises(ValueError, match="non-negative int"):
            w.log({"a": 1.0}, step=6.5)


def test_bad_rank_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="rank 2"):
        RunWriter(tmp_path, rank=2, world_size=2)


def test_reader_errors_for_missing_and_non_run_dirs(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        RunReader(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        RunReader(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run directory"):
        RunReader(tmp_path / "empty")


def test_a_missing_run_is_also_a_file_not_found_error(tmp_path):
    """Library users write `except FileNotFoundError`, as for any missing file."""
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        RunReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunReader(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        RunReader(tmp_path / "file")


def test_a_run_being_created_reads_as_empty(tmp_path):
    (tmp_path / "telemetry").mkdir()
    r = RunReader(tmp_path)
    assert r.scalars().empty and r.status == "empty" and r.poll().empty


def test_a_poll_only_reader_drops_what_it_returned(tmp_path):
    w = RunWriter(tmp_path)
    reader = RunReader(tmp_path, keep_history=False)
    steps = []
    for i in range(30):
        w.log({"a": float(i), "act/halt_steps": np.ones(3)}, step=i)
        if i % 10 == 9:
            w.flush()
            steps += reader.poll()["step"].tolist()
            assert reader._blocks == [] and reader._tensor_blocks == []
    w.close()
    assert steps == list(range(30))
    assert len(reader.scalars()) == 30 and len(reader.tensors("act/halt_steps")) == 30


def test_segments_rotate_into_parts_that_read_as_one_timeline(tmp_path, monkeypatch):
    from hrm_doctor.telemetry import schema

    monkeypatch.setattr(schema, "SEGMENT_MAX_BYTES", 4096)
    with RunWriter(tmp_path) as w:
        for i in range(2000):
            w.log({"a": float(i), "b": 1.0, "act/halt_steps": np.arange(3)}, step=i)
            if i % 50 == 0:
                w.flush()
    parts = sorted(p.name for p in (tmp_path / "telemetry").iterdir())
    assert len(parts) > 3 and parts[1].endswith("p0001.hrmt")
    r = RunReader(tmp_path)
    df = r.scalars()
    assert df["step"].tolist() == list(range(2000)) and df["a"].tolist() == [
        float(i) for i in range(2000)
    ]
    assert len(r.tensors("act/halt_steps")) == 2000
    assert r.status == "finished" and r.corrupt_segments == []
