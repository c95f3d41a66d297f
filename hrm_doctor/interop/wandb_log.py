"""Read a W&B run's ``.wandb`` transaction log offline: LevelDB-log framing over protobuf Records.

The framing is LevelDB's log format as wandb writes it (wandb/sdk/internal/datastore.py before
0.18, core/pkg/leveldb in wandb-core since): a 7-byte file header (``:W&B``, magic 0xBEE1, format
version), then 32 KiB blocks of records, each with a 7-byte header (CRC-32, length, type FULL /
FIRST / MIDDLE / LAST); a block with fewer than 7 bytes left is zero-padded. Unlike LevelDB the
checksum is the plain IEEE CRC-32 (zlib's) of the type byte and the data, not a masked CRC-32C:
verified against runs written by wandb 0.31.0. The payloads are ``wandb_internal_pb2.Record``
messages, decoded with the installed wandb's own classes (imported lazily: wandb is heavy).
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
    pos = 0  # position in `data`; file offset = offset + pos
    n = len(data)
    pieces: list[bytes] = []
    while True:
        file_pos = offset + pos
        left_in_block = BLOCK_SIZE - file_pos % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # zero padding at the end of a block
            if pos + left_in_block > n:
                break
            pos += left_in_block
            continue
        if pos + RECORD_HEADER.size > n:
            break
        crc, length, rtype = RECORD_HEADER.unpack_from(data, pos)
        if crc == 0 and length == 0 and rtype == 0:
            # Pre-allocated or zero-filled tail (never a real record): treat as not yet written.
            break
        if rtype not in _TYPE_CRC or length > left_in_block - RECORD_HEADER.size:
            raise WandbLogError(
                f"{path}: corrupt W&B log at byte {file_pos} (record type {rtype}, length {length})"
            )
        start = pos + RECORD_HEADER.size
        if start + length > n:
            break
        payload = data[start : start + length]
        if zlib.crc32(payload, _TYPE_CRC[rtype]) != crc:
            raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (checksum mismatch)")
        pos = start + length
        if rtype == FULL:
            if pieces:
                raise WandbLogError(f"{path}: corrupt W&B log at byte {file_pos} (FULL in FIRST)")
            chunk.records.append(payload)
            chunk.end_offset = offset + pos
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
            chunk.records.append(b"".join(pieces))
            pieces = []
            chunk.end_offset = offset + pos
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


def _item_key(item: Any) -> str:
    return item.key if item.key else "/".join(item.nested_key)


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


def _config_updates(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key = _item_key(item)
        if key == "_wandb" or key.startswith("_wandb/"):
            continue
        try:
            out[key] = json.loads(item.value_json)
        except ValueError:
            out[key] = item.value_json
    return out


def decode_records(payloads: list[bytes]) -> Iterator[tuple[str, Any]]:
    """Yield ("header", producer_version) | ("run", RunInfo) | ("config", dict) |
    ("history", HistoryRow) | ("summary", dict) | ("exit", exit_code) for the records we use."""
    from wandb.proto import wandb_internal_pb2 as pb  # heavy: only when reading

    record = pb.Record()
    for payload in payloads:
        record.Clear()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            step: int | None = None
            values: dict[str, float] = {}
            for item in record.history.item:
                key = _item_key(item)
                if key == "_step":
                    try:
                        step = int(json.loads(item.value_json))
                    except (ValueError, TypeError):
                        step = None
                    continue
                if key.startswith("_"):  # _runtime, _timestamp, _wandb
                    continue
                value = _number(item.value_json)
                if value is not None:
                    values[key] = value
            if step is None and record.history.HasField("step"):
                step = int(record.history.step.num)
            yield "history", HistoryRow(step, values)
        elif kind == "summary":
            yield "summary", _config_updates(record.summary.update)
        elif kind == "config":
            yield "config", _config_updates(record.config.update)
        elif kind == "run":
            r = record.run
            yield "run", RunInfo(r.run_id, r.project, r.entity, _config_updates(r.config.update))
        elif kind == "header":
            yield "header", record.header.version_info.producer
        elif kind == "exit":
            yield "exit", int(record.exit.exit_code)


def find_log_file(src: Path) -> Path | None:
    """The ``run-<id>.wandb`` file of a W&B run directory (or `src` itself if it is one)."""
    if src.is_file() and src.suffix == ".wandb":
        return src
    files = sorted(src.glob("run-*.wandb")) if src.is_dir() else []
    return files[-1] if files else None
