"""Fast decoding of a W&B log's history and summary records: numpy over the raw protobuf bytes.

A run of 100k steps holds 100k history records (one item per metric, each a JSON number) and
about twice as many summary records. Decoding them one protobuf object and one `json.loads` per
item was most of an import. Here the records of a chunk are joined into one byte array and
walked together, one item per record per numpy pass (wire format: Record.history = field 2,
Record.summary = field 3; their items = field 1, with `key` 1 or `nested_key` 2 and
`value_json` 16); the keys are interned by hashing them 8 bytes at a time, and the numbers
parsed by one call of numpy's float parser. A summary keeps the last value of each key.

Anything outside the common layout (a multi-byte length, typed value fields, more than four
`nested_key` parts, a value of more than 127 bytes, a summary that removes keys...) sends that
record to the general path (`wandb_log.decode_records`): this is an optimisation, never a
second interpretation. tests/interop/test_wandb_fast.py checks both against wandb's classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HISTORY, SUMMARY = 0x12, 0x1A  # the tags of Record.history (2) and Record.summary (3)
_VALUE_TAG = (0x82, 0x01)  # field 16 (value_json), wire type 2
_MAX_ITEMS = 4096
_MAX_PARTS = 4  # nested_key parts of one key ("_wandb/runtime" has two)
_MAX_KEY = 255
_NUMERIC_FIRST = np.frombuffer(b"-0123456789NI", dtype=np.uint8)  # numbers, NaN, +-Infinity
_BOOL = {ord("t"): 1.0, ord("f"): 0.0}
_PAD = 16  # zero bytes after the last record: reads a few bytes past an end stay in bounds


@dataclass
class Joined:
    """The records of a chunk as one byte array: record i is buf[starts[i]:starts[i]+lengths[i]]."""

    buf: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, records: list[bytes]) -> Joined:
        lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
        starts = np.zeros(len(records), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        buf = np.frombuffer(b"".join(records) + b"\x00" * _PAD, dtype=np.uint8)
        return cls(buf, starts, lengths)

    def record(self, i: int) -> bytes:
        return self.buf[self.starts[i] : self.starts[i] + self.lengths[i]].tobytes()

    def kinds(self) -> np.ndarray:
        """Per record: HISTORY, SUMMARY, or 0 (anything else: Record.num, field 1, first)."""
        first = self.buf[self.starts]
        _, after = _varint(self.buf, self.starts + 1)
        tag = self.buf[after]
        known = (first == 0x08) & (self.lengths > 2) & ((tag == HISTORY) | (tag == SUMMARY))
        return np.where(known, tag, 0).astype(np.uint8)


@dataclass
class HistoryBlock:
    """History rows of a chunk, by column: `values[i, j]` is metric `names[j]` at row i where
    `present[i, j]`. `steps[i]` is the row's `_step` (-1: none given). Rows are in log order;
    `records` are their indices in the chunk."""

    steps: np.ndarray
    names: list[str]
    values: np.ndarray
    present: np.ndarray
    records: np.ndarray
    fallback: list[int] = field(default_factory=list)  # record indices for the general path


def _varint(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode the varints at `pos` (up to 5 bytes); -> (value, position after)."""
    value = np.zeros(len(pos), dtype=np.int64)
    done = np.zeros(len(pos), dtype=bool)
    for shift in range(0, 35, 7):
        byte = buf[np.minimum(pos, len(buf) - 1)].astype(np.int64)
        value |= np.where(done, 0, (byte & 0x7F) << shift)
        pos = np.where(done, pos, pos + 1)
        done |= byte < 0x80
    return value, pos


@dataclass
class _Items:
    """The items of a set of records of one kind, walked together."""

    ok: np.ndarray  # (records,) decoded by this path
    rec: np.ndarray  # (items,) the record of each item, in log order with `position`
    position: np.ndarray  # (items,) the item's place in its record
    key_id: np.ndarray  # (items,) index into `names`
    names: list[str]
    v_off: np.ndarray
    v_len: np.ndarray
    step_num: np.ndarray  # (records,) HistoryStep.num: -1 absent, 0 present and empty


def _walk(j: Joined, indices: np.ndarray, trailer: int | None) -> _Items | None:
    """Walk the items (field 1 of the record's message) of records `indices` at once, only the
    records still going at each pass. `trailer` is the one other field allowed among them
    (HistoryStep, tag 0x12), or None. None when the keys are too long to intern this way."""
    buf = j.buf
    n = len(indices)
    ok = np.ones(n, dtype=bool)
    _, pos = _varint(buf, j.starts[indices] + 1)  # Record: num, then the field's tag, length
    body_len, pos = _varint(buf, pos + 1)
    end = pos + body_len
    ok &= end == j.starts[indices] + j.lengths[indices]  # nothing after it (no _info, ...)
    step_num = np.full(n, -1, dtype=np.int64)
    found: list[tuple[np.ndarray, ...]] = []
    live = np.nonzero(ok & (pos < end))[0]  # the records with items left
    for k in range(_MAX_ITEMS):
        if not len(live):
            break
        p, e = pos[live], end[live]
        tag = buf[p]
        good = np.ones(len(live), dtype=bool)
        ended = np.zeros(len(live), dtype=bool)
        step = tag == trailer if trailer is not None else ended
        if step.any():  # HistoryStep {num = 1}: once per record, usually its last field
            s = np.nonzero(step)[0]
            ps = p[s]
            slen = buf[ps + 1].astype(np.int64)
            num, after = _varint(buf, ps + 3)
            fine = (slen == 0) | ((slen < 0x80) & (buf[ps + 2] == 0x08) & (after == ps + 2 + slen))
            good[s] = fine
            step_num[live[s[fine]]] = np.where(slen == 0, 0, num)[fine]
            p[s] = np.where(fine, ps + 2 + slen, ps)
            tag[s] = buf[p[s]]
            ended[s] = fine & (p[s] >= e[s])
        item_end = p + 2 + buf[p + 1].astype(np.int64)
        good &= ended | ((tag == 0x0A) & (buf[p + 1] < 0x80))
        # Key parts: `key` (1) or `nested_key` (2) subfields, joined by "/".
        q = p + 2
        part_off = np.zeros((len(live), _MAX_PARTS), dtype=np.int64)
        part_len = np.zeros((len(live), _MAX_PARTS), dtype=np.int64)
        for part in range(_MAX_PARTS):
            t = buf[q]
            is_part = ~ended & ((t == 0x0A) | (t == 0x12)) & (q < item_end)
            if part and not is_part.any():
                break
            plen = buf[q + 1].astype(np.int64)
            good &= ~is_part | (plen < 0x80)
            part_off[:, part] = np.where(is_part, q + 2, 0)
            part_len[:, part] = np.where(is_part, plen, 0)
            q = np.where(is_part, q + 2 + plen, q)
        vlen = buf[q + 2].astype(np.int64)
        good &= ended | (
            (part_len[:, 0] > 0)
            & (buf[q] == _VALUE_TAG[0])
            & (buf[q + 1] == _VALUE_TAG[1])
            & (vlen < 0x80)
            & (q + 3 + vlen == item_end)
        )
        ok[live[~good]] = False
        item = good & ~ended
        idx = np.nonzero(item)[0]
        found.append((live[idx], np.full(len(idx), k), part_off[idx], part_len[idx],
                      q[idx] + 3, vlen[idx]))  # fmt: skip
        pos[live] = np.where(item, item_end, e)
        live = live[item & (item_end < e)]
    else:
        ok[live] = False  # more items than _MAX_ITEMS: the general path
    columns = [np.concatenate(x) for x in zip(*found, strict=True)] if found else [np.zeros(0, np.int64)] * 6  # fmt: skip
    if not found:
        columns[2] = columns[3] = np.zeros((0, _MAX_PARTS), np.int64)
    keep = ok[columns[0]]  # the items of records that failed later go with their record
    rec, position, p_off, p_len, v_off, v_len = (x[keep] for x in columns)
    interned = _intern_keys(buf, p_off, p_len)
    if interned is None:
        return None
    names, key_id = interned
    return _Items(ok, rec, position, key_id, names, v_off, v_len, step_num)


_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [2**64 - 1], dtype=np.uint64)
_FNV = (np.uint64(14695981039346656037), np.uint64(1099511628211))
_SECOND = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def _intern_keys(
    buf: np.ndarray, p_off: np.ndarray, p_len: np.ndarray
) -> tuple[list[str], np.ndarray] | None:
    """Key parts -> (distinct keys "a/b/c", each item's key index): two independent 64-bit
    hashes of each item's parts, read 8 bytes at a time; np.unique on the first, and every item
    checked to share its key's second hash and length (a collision would be caught, not
    trusted: the general path then decodes the chunk)."""
    if not len(p_off):
        return [], np.zeros(0, dtype=np.int64)
    if int(p_len.max()) > _MAX_KEY:
        return None
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf.data, strides=(1,))
    h1 = np.full(len(p_off), _FNV[0], dtype=np.uint64)
    h2 = np.full(len(p_off), _SECOND[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in range(p_len.shape[1]):
            length = p_len[:, part]
            if not length.any():
                break
            h1 = (h1 ^ length.astype(np.uint64)) * _FNV[1]
            h2 = (h2 + length.astype(np.uint64)) * _SECOND[1]
            for w in range(-(-int(length.max()) // 8)):
                rem = np.clip(length - 8 * w, 0, 8)
                word = words[np.where(rem > 0, p_off[:, part] + 8 * w, 0)] & _MASKS[rem]
                h1 = (h1 ^ word) * _FNV[1]
                h2 = ((h2 ^ (word >> np.uint64(29))) + word) * _SECOND[1]
    _, first, key_id = np.unique(h1, return_index=True, return_inverse=True)
    key_id = key_id.ravel()
    rep = first[key_id]  # each item's representative
    if not ((h2 == h2[rep]).all() and (p_len == p_len[rep]).all()):
        return None
    names = [
        "/".join(
            buf[o : o + ln].tobytes().decode("utf-8", "replace")
            for o, ln in zip(p_off[i], p_len[i], strict=True)
            if ln
        )
        for i in first
    ]
    return names, key_id


def decode_history(j: Joined, indices: np.ndarray) -> HistoryBlock:
    """The history records `indices` of the chunk, decoded together."""
    indices = np.asarray(indices, dtype=np.int64)
    items = _walk(j, indices, trailer=HISTORY) if len(indices) else None
    if items is None:
        empty = np.zeros((0, 0))
        return HistoryBlock(
            np.zeros(0, np.int64), [], empty, empty.astype(bool), indices[:0], indices.tolist()
        )
    names, key_id = items.names, items.key_id
    wanted = [c for c, name in enumerate(names) if not name.startswith("_")]
    column = np.full(len(names), -1, dtype=np.int64)
    column[wanted] = np.arange(len(wanted))
    c = column[key_id]
    is_step = key_id == names.index("_step") if "_step" in names else np.zeros(len(c), bool)
    parse = (c >= 0) | is_step  # _runtime, _timestamp...: not parsed
    values = np.full(len(key_id), np.nan)
    values[parse] = _parse_values(j.buf, items.v_off[parse], items.v_len[parse])
    # Rows: one per record that decoded; the _step item gives its step.
    rows = np.nonzero(items.ok)[0]
    row_of = np.full(len(items.ok), -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    r = row_of[items.rec]
    steps = items.step_num[rows]
    at = is_step & np.isfinite(values)
    steps[r[at]] = values[at].astype(np.int64)
    numeric = (c >= 0) & (~np.isnan(values) | (j.buf[items.v_off] == ord("N")))  # a NaN: kept
    table = np.full((len(rows), len(wanted)), np.nan)
    present = np.zeros((len(rows), len(wanted)), dtype=bool)
    table[r[numeric], c[numeric]] = values[numeric]
    present[r[numeric], c[numeric]] = True
    fallback = indices[~items.ok].tolist()
    return HistoryBlock(steps, [names[c] for c in wanted], table, present, indices[rows], fallback)


def _parse_values(buf: np.ndarray, off: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The JSON values as floats: numbers (NaN, Infinity included) by numpy's float parser,
    true and false as 1 and 0; NaN for anything else (strings, objects: not metrics)."""
    out = np.full(len(off), np.nan)
    if not len(off):
        return out
    first = buf[off]
    numeric = np.isin(first, _NUMERIC_FIRST) & (length > 0)
    for byte, value in _BOOL.items():
        out[(first == byte) & (length >= 4)] = value
    idx = np.nonzero(numeric)[0]
    if len(idx):
        o, ln = off[idx], length[idx] + 1  # each number and one byte after it, made a space
        ends = np.cumsum(ln)
        gather = np.repeat(o - (ends - ln), ln) + np.arange(int(ends[-1]))
        blob = buf[gather]
        blob[ends - 1] = ord(" ")
        text = blob.tobytes().decode("ascii", "replace").replace("Infinity", "inf")
        parsed = np.array(text.split(), dtype=np.float64)
        if len(parsed) != len(idx):  # a token numpy would not parse: one at a time
            parsed = np.array([_json_number(t) for t in text.split(" ")[: len(idx)]])
        out[idx] = parsed
    return out


def _json_number(token: str) -> float:
    try:
        value = json.loads(token.replace("inf", "Infinity"))
    except ValueError:
        return float("nan")
    return float(value) if isinstance(value, (int, float)) else float("nan")


def merged_summary(j: Joined, indices: np.ndarray) -> dict[str, Any] | None:
    """The summary after the summary records `indices`, key -> value (the last update wins);
    None when one of them removes keys (then the caller applies them one by one)."""
    if not len(indices):
        return {}
    items = _walk(j, np.asarray(indices, dtype=np.int64), trailer=None)
    if items is None or not items.ok.all():  # a remove, or an unusual layout
        return _merged_summary_general([j.record(i) for i in indices])
    order = np.lexsort((items.position, items.rec))  # the items in log order
    last = np.full(len(items.names), -1, dtype=np.int64)
    np.maximum.at(last, items.key_id[order], np.arange(len(order)))
    out: dict[str, Any] = {}
    for key, at in zip(items.names, last.tolist(), strict=True):
        if at < 0 or key == "_wandb" or key.startswith("_wandb/"):
            continue
        i = order[at]
        raw = j.buf[items.v_off[i] : items.v_off[i] + items.v_len[i]].tobytes()
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw.decode("utf-8", "replace")
    return out


def _merged_summary_general(payloads: list[bytes]) -> dict[str, Any] | None:
    """Every record's items in order (None if a record removes keys)."""
    from hrm_doctor.interop.wandb_log import decode_records, message_field, wire_fields

    if any(2 in message_field(wire_fields(p), 3) for p in payloads):  # SummaryRecord.remove
        return None
    out: dict[str, Any] = {}
    for kind, value in decode_records(payloads):
        if kind == "summary":
            out.update(value)
    return out
