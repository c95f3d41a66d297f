"""Read a W&B run's ``.wandb`` transaction log offline: LevelDB-log framing over protobuf Records.

The framing is LevelDB's log format as wandb writes it (wandb/sdk/internal/datastore.py before
0.18, core/pkg/leveldb in wandb-core since): a 7-byte file header (``:W&B``, magic 0xBEE1, format
version), then 32 KiB blocks of records, each with a 7-byte header (CRC-32, length, type FULL /
FIRST / MIDDLE / LAST); a block with fewer than 7 bytes left is zero-padded. Unlike LevelDB the
checksum is the plain IEEE CRC-32 (zlib's) of the type byte and the data, not a masked CRC-32C:
verified against runs written by wandb 0.31.0. The payloads are ``wandb_internal_pb2.Record``
messages: history and summary records by numpy over their bytes (wandb_fast), the few others
by a small wire-format reader here (tested against wandb's own protobuf classes).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
# LevelDB-log format versions this reader understands (the third field of the file header).
SUPPORTED_FORMAT_VERSIONS = frozenset({0})
# wandb releases whose run logs this reader was verified against (the producer version in the
# run's Header record). Other 0.x producers with format version 0 are read, with a note.
VERIFIED_WANDB_VERSIONS = ("0.31",)

FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# The CRC of a record covers its type byte first: precompute it per type (zlib's running CRC).
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class WandbLogError(UserError):
    """The .wandb file is not a W&B transaction log this reader understands, or is corrupt."""


def check_file_header(path: Path, head: bytes) -> None:
    """Validate the 7-byte file header; raise WandbLogError naming the file otherwise."""
    if len(head) < FILE_HEADER.size:
        raise WandbLogError(
            f"{path}: truncated W&B log ({len(head)} bytes, shorter than its 7-byte header)"
        )
    ident, magic, version = FILE_HEADER.unpack_from(head)
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise WandbLogError(f"{path}: not a W&B transaction log (bad file header {head[:7]!r})")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise WandbLogError(
            f"{path}: W&B log format version {version} is not supported (this reader knows "
            f"version(s) {sorted(SUPPORTED_FORMAT_VERSIONS)}, verified with wandb "
            f"{', '.join(VERIFIED_WANDB_VERSIONS)})"
        )


@dataclass
class Chunk:
    """The complete records found from a byte offset, and where reading stopped."""

    records: list[bytes] = field(default_factory=list)
    end_offset: int = 0  # the offset after the last complete record: the next cursor
    partial_tail: bool = False  # bytes after end_offset that do not (yet) form a record
    at_eof: bool = True  # False: stopped at `max_bytes`, more complete records may follow


def read_records(path: Path, offset: int = 0, max_bytes: int = 16 << 20) -> Chunk:
    """Read the complete records of `path` from `offset` (0, or a previous `end_offset`).

    A record cut off at the end of the file (the writer is still writing, or was killed) is not
    an error: it is left for the next call, and `partial_tail` says it is there. A checksum
    mismatch or an impossible record type inside the data is corruption: WandbLogError.
    """
    with open(path, "rb") as f:
        if offset == 0:
            head = f.read(FILE_HEADER.size)
            check_file_header(path, head)
            offset = FILE_HEADER.size
        f.seek(offset)
        data = f.read(max_bytes)
        at_eof = len(data) < max_bytes or not f.read(1)
    chunk = Chunk(end_offset=offset, at_eof=at_eof)
    # The hot loop (one pass per record, 300k for 100k steps): locals only.
    unpack, crc32, type_crc, head = RECORD_HEADER.unpack_from, zlib.crc32, _TYPE_CRC, 7
    records = chunk.records
    append = records.append
    pos = 0  # position in `data`; file offset = offset + pos
    end = offset  # file offset after the last complete record
    n = len(data)
    pieces: list[bytes] = []
    while True:
        left_in_block = BLOCK_SIZE - (offset + pos) % BLOCK_SIZE
        if left_in_block < head:  # zero padding at the end of a block
            if pos + left_in_block > n:
                break
            pos += left_in_block
            continue
        if pos + head > n:
            break
        crc, length, rtype = unpack(data, pos)
        if crc == 0 and length == 0 and rtype == 0:
            # Pre-allocated or zero-filled tail (never a real record): treat as not yet written.
            break
        file_pos = offset + pos
        if rtype not in type_crc or length > left_in_block - head:
            raise WandbLogError(
                f"{path}: corrupt W&B log at byte {file_pos} (record type {rtype}, length {length})"
            )
        start = pos + head
        pos = start + length
        if pos > n:
            break
        payload = data[start:pos]
        if crc32(payload, type_crc[rtype]) != crc:
            raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (checksum mismatch)")
        if rtype == FULL:
            if pieces:
                raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (FULL in FIRST)")
            append(payload)
            end = offset + pos
        elif rtype == FIRST:
            if pieces:
                raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (FIRST twice)")
            pieces = [payload]
        elif not pieces:
            raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (orphan fragment)")
        elif rtype == MIDDLE:
            pieces.append(payload)
        else:  # LAST
            pieces.append(payload)
            append(b"".join(pieces))
            pieces = []
            end = offset + pos
    chunk.end_offset = end
    chunk.partial_tail = (
        at_eof and chunk.end_offset < offset + n and any(data[chunk.end_offset - offset :])
    )
    return chunk


# ---- protobuf Records -> plain events -------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    step: int | None
    values: dict[str, float]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    project: str
    entity: str
    config: dict[str, Any]


def wire_fields(data: bytes) -> dict[int, list[Any]]:
    """Protobuf wire format -> {field number: [values]} (varints and fixed as ints, lengths as
    bytes). A few dozen records per run go this way (run, config, header, exit, and the odd
    history or summary record the numpy path leaves): wandb's own classes would cost importing
    wandb (half a second) for them. Tested against those classes."""
    out: dict[int, list[Any]] = {}
    pos, n = 0, len(data)
    while pos < n:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} (field {number})")
        if pos > n:
            raise ValueError("truncated protobuf message")
        out.setdefault(number, []).append(value)
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def message_field(fields: dict[int, list[Any]], number: int) -> dict[int, list[Any]]:
    """A submessage field; several occurrences merge (their bytes concatenate)."""
    return wire_fields(b"".join(fields.get(number, [])))


def _text(fields: dict[int, list[Any]], number: int) -> str:
    values = fields.get(number)
    return values[-1].decode("utf-8", "replace") if values else ""


def _items(fields: dict[int, list[Any]]) -> Iterator[tuple[str, str]]:
    """(key, value_json) of the items (field 1: key 1, nested_key 2, value_json 16)."""
    for raw in fields.get(1, []):
        item = wire_fields(raw)
        key = _text(item, 1) or "/".join(k.decode("utf-8", "replace") for k in item.get(2, []))
        yield key, _text(item, 16)


def _number(value_json: str) -> float | None:
    """A history value as a float, or None for strings, media, histograms, tables."""
    try:
        value = json.loads(value_json)  # NaN, Infinity, -Infinity parse as floats
    except ValueError:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    return None


def _config_updates(fields: dict[int, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value_json in _items(fields):
        if key == "_wandb" or key.startswith("_wandb/"):
            continue
        try:
            out[key] = json.loads(value_json)
        except ValueError:
            out[key] = value_json
    return out


# Record fields (wandb_internal.proto): the kinds hrm-doctor reads.
_HISTORY, _SUMMARY, _CONFIG, _RUN, _EXIT, _HEADER = 2, 3, 5, 17, 18, 21


def decode_records(payloads: list[bytes]) -> Iterator[tuple[str, Any]]:
    """Yield ("header", producer_version) | ("run", RunInfo) | ("config", dict) |
    ("history", HistoryRow) | ("summary", dict) | ("exit", exit_code) for the records we use."""
    for payload in payloads:
        try:
            record = wire_fields(payload)
        except ValueError:
            raise WandbLogError(
                f"a W&B record is not a protobuf message ({len(payload)} bytes)"
            ) from None
        if _HISTORY in record:
            history = message_field(record, _HISTORY)
            step: int | None = None
            values: dict[str, float] = {}
            for key, value_json in _items(history):
                if key == "_step":
                    try:
                        step = int(json.loads(value_json))
                    except (ValueError, TypeError):
                        step = None
                    continue
                if key.startswith("_"):  # _runtime, _timestamp, _wandb
                    continue
                value = _number(value_json)
                if value is not None:
                    values[key] = value
            if step is None and 2 in history:  # HistoryStep {num = 1}
                step = int(message_field(history, 2).get(1, [0])[-1])
            yield "history", HistoryRow(step, values)
        elif _SUMMARY in record:
            yield "summary", _config_updates(message_field(record, _SUMMARY))
        elif _CONFIG in record:
            yield "config", _config_updates(message_field(record, _CONFIG))
        elif _RUN in record:
            run = message_field(record, _RUN)
            config = _config_updates(message_field(run, 4))
            yield "run", RunInfo(_text(run, 1), _text(run, 3), _text(run, 2), config)
        elif _HEADER in record:
            yield "header", _text(message_field(message_field(record, _HEADER), 1), 1)
        elif _EXIT in record:
            code = int(message_field(record, _EXIT).get(1, [0])[-1])
            yield "exit", code - (1 << 64) if code >= 1 << 63 else code  # int32: sign-extended


def find_log_file(src: Path) -> Path | None:
    """The ``run-<id>.wandb`` file of a W&B run directory (or `src` itself if it is one)."""
    if src.is_file() and src.suffix == ".wandb":
        return src
    files = sorted(src.glob("run-*.wandb")) if src.is_dir() else []
    return files[-1] if files else None
