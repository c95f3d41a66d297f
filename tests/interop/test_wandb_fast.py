"""The numpy decoding of W&B history and summary records against wandb's own protobuf classes,
on records built to stray from the common layout (each such record takes the protobuf path)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hrm_doctor.interop.wandb_log import decode_records
from hrm_doctor.interop.wandb_source import _decode_fast, _with_rows

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")


def history(num: int, items: list[tuple[object, str]], step: int | None = None) -> bytes:
    record = pb.Record(num=num)
    for key, value in items:
        item = record.history.item.add()
        if isinstance(key, tuple):
            item.nested_key.extend(key)
        elif key.startswith("k:"):
            item.key = key[2:]
        else:
            item.nested_key.append(key)
        item.value_json = value
    if step is not None:
        record.history.step.num = step
    else:
        record.history.SetInParent()
    return record.SerializeToString()


def summary(num: int, items: list[tuple[str, str]], remove: list[str] = ()) -> bytes:
    record = pb.Record(num=num)
    for key, value in items:
        item = record.summary.update.add()
        item.key = key
        item.value_json = value
    for key in remove:
        record.summary.remove.add().key = key
    return record.SerializeToString()


RECORDS = [
    history(1, [("_step", "0"), ("train/lm_loss", "2.5"), ("k:train/lr", "0.0001")]),
    history(2, [("train/lm_loss", "NaN"), ("_step", "1"), ("grad/norm", "Infinity")]),
    history(3, [("_step", "2"), ("train/lm_loss", "-Infinity"), ("flag", "true")]),
    history(4, [("_step", "3"), (("all", "exact_accuracy"), "0.25"), ("x", '"text"')]),
    history(
        5, [("_step", "4"), ("hist", '{"_type": "histogram", "values": [' + "1," * 80 + "1]}")]
    ),
    history(6, [("train/lm_loss", "1.5e-07")], step=5),  # no _step item: HistoryStep.num
    history(7, [("_step", "6"), ("caf\u00e9/\u00e9t\u00e9", "3"), (("a", "b", "c"), "4")]),
    summary(8, [("train/lm_loss", "2.5"), ("_wandb", "{}")]),
    history(9, [("_step", "7"), ("train/lm_loss", "1"), ("k:" + "m" * 200, "5")]),
    summary(10, [("train/lm_loss", "1"), ("best", "0.9")]),
]


def slow_rows(records: list[bytes]) -> list[tuple[int | None, dict[str, float]]]:
    return [(v.step, v.values) for k, v in decode_records(records) if k == "history"]


def test_every_layout_decodes_as_the_protobuf_path_does():
    block, slow, summ = _decode_fast(RECORDS)
    rows = [(i, *row) for i in slow for row in slow_rows([RECORDS[i]])]
    cols = _with_rows(block, rows)
    expected = slow_rows(RECORDS)
    assert [int(s) for s in cols.steps] == [s for s, _ in expected]
    for i, (_, values) in enumerate(expected):
        got = {n: cols.values[i, j] for j, n in enumerate(cols.names) if cols.present[i, j]}
        assert got.keys() == values.keys(), i
        for name, value in values.items():
            assert got[name] == value or (math.isnan(got[name]) and math.isnan(value))
    assert summ == {"train/lm_loss": 1, "best": 0.9}


def test_fast_path_takes_the_common_records_and_leaves_the_rest():
    block, slow, _ = _decode_fast(RECORDS)
    assert 0 in block.records and 1 in block.records and 5 in block.records
    assert 4 in slow  # a value of more than 127 bytes: the protobuf path
    assert 8 in slow  # a key of 200 bytes: its length takes two bytes


def test_a_summary_that_removes_keys_goes_record_by_record():
    records = [summary(1, [("a", "1"), ("b", "2")]), summary(2, [], remove=["a"])]
    _, slow, summ = _decode_fast(records)
    assert summ is None and slow == [0, 1]


def test_values_parse_like_json():
    block, _, _ = _decode_fast(RECORDS[:3])
    col = {n: j for j, n in enumerate(block.names)}
    assert (
        np.isnan(block.values[1, col["train/lm_loss"]]) and block.present[1, col["train/lm_loss"]]
    )
    assert block.values[1, col["grad/norm"]] == math.inf
    assert block.values[2, col["train/lm_loss"]] == -math.inf
    assert block.values[2, col["flag"]] == 1.0


def protobuf_events(payloads: list[bytes]) -> list[tuple[str, object]]:
    """What wandb's own protobuf classes say each record holds (the reference of the readers)."""
    import json

    def key(item) -> str:
        return item.key if item.key else "/".join(item.nested_key)

    def updates(items) -> dict:
        out = {}
        for item in items:
            if key(item) == "_wandb" or key(item).startswith("_wandb/"):
                continue
            try:
                out[key(item)] = json.loads(item.value_json)
            except ValueError:
                out[key(item)] = item.value_json
        return out

    events = []
    for payload in payloads:
        record = pb.Record.FromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {key(i): i.value_json for i in record.history.item}
            step = int(items["_step"]) if "_step" in items else None
            if step is None and record.history.HasField("step"):
                step = record.history.step.num
            values = {}
            for k, v in items.items():
                if k.startswith("_"):
                    continue
                try:
                    parsed = json.loads(v)
                except ValueError:
                    continue
                if isinstance(parsed, bool | int | float):
                    values[k] = float(parsed)
            events.append(("history", (step, values)))
        elif kind in ("summary", "config"):
            events.append((kind, updates(getattr(record, kind).update)))
        elif kind == "run":
            r = record.run
            events.append(("run", (r.run_id, r.project, r.entity, updates(r.config.update))))
        elif kind == "header":
            events.append(("header", record.header.version_info.producer))
        elif kind == "exit":
            events.append(("exit", record.exit.exit_code))
    return events


def light_events(payloads: list[bytes]) -> list[tuple[str, object]]:
    out = []
    for kind, value in decode_records(payloads):
        if kind == "history":
            value = (value.step, value.values)
        elif kind == "run":
            value = (value.run_id, value.project, value.entity, value.config)
        out.append((kind, value))
    return out


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_the_wire_reader_reads_what_wandbs_classes_read(wandb_run, wandb_trm_run):
    from hrm_doctor.interop.wandb_log import find_log_file, read_records

    exit_record = pb.Record(num=11)
    exit_record.exit.exit_code = -2
    extra = [exit_record.SerializeToString()]
    for payloads in (
        read_records(find_log_file(wandb_run.resolve())).records,
        read_records(find_log_file(wandb_trm_run.resolve())).records,
        RECORDS + extra,
    ):
        assert same(light_events(payloads), protobuf_events(payloads))
