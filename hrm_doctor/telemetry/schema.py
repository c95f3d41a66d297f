"""The on-disk telemetry format (version 1): the one place that knows how bytes are laid out.

Both `RunWriter` and `RunReader` import the encoders and decoders below; docs/telemetry.md
describes the same layout for people writing their own readers.

A run directory holds ``meta.json``, ``config.json`` and ``telemetry/``. Each writer session of
each rank appends frames to its own segment files ``telemetry/r{rank:05d}.s{session:04d}.p{part:04d}.hrmt``
(no file is shared between processes, so ranks need no locks). A frame is a 16-byte header
(magic, kind, payload length, CRC-32 of the payload) followed by the payload padded to 8 bytes.
A reader stops at the first frame that is incomplete or fails its CRC: that is the unflushed
tail of a writer killed mid-write, or of one still writing.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SEGMENT_SUFFIX = ".hrmt"
SEGMENT_RE = re.compile(r"^r(\d{5})\.s(\d{4})\.p(\d{4})\.hrmt$")
# A segment is closed and a new part started past this size, so old parts never change.
SEGMENT_MAX_BYTES = 256 * 1024 * 1024

METRIC_NAME_RE = re.compile(r"^[A-Za-z0-9_./@-]+$")  # @: eval/arc/pass@2 (DESIGN)
RESERVED_NAMES = frozenset({"step", "rank", "time"})

FRAME_MAGIC = 0x544D5248  # b"HRMT" little-endian
HEADER = struct.Struct("<IB3xII")  # magic, kind, (pad), payload length, crc32
HEADER_SIZE = HEADER.size  # 16
MAX_PAYLOAD = 1 << 30

# Frame kinds.
KIND_HEADER = ord("H")  # JSON: who wrote this segment (rank, session, pid, host, branch step)
KIND_KEYS = ord("K")  # JSON: {"id": n, "names": [...]} a scalar key set, or {"id", "tensor"}
KIND_SCALARS = ord("B")  # binary: rows of one key set
KIND_TENSOR = ord("T")  # binary: 1-D arrays of one tensor name
KIND_END = ord("E")  # JSON: the session closed cleanly ({"status": "finished"|"failed"})

ROWS = struct.Struct("<II")  # key-set (or tensor) id, number of rows


def segment_name(rank: int, session: int, part: int) -> str:
    return f"r{rank:05d}.s{session:04d}.p{part:04d}{SEGMENT_SUFFIX}"


def check_metric_name(name: object) -> str:
    """Return `name` if it is a valid metric name, else raise a ValueError that names it."""
    if not isinstance(name, str):
        raise ValueError(f"metric name {name!r}: must be a string")
    if not METRIC_NAME_RE.match(name):
        raise ValueError(
            f"metric {name!r}: name may only contain letters, digits and _ . / @ - characters"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"metric {name!r}: name is reserved for a column of the reader")
    return name


def _pad8(n: int) -> int:
    return (-n) % 8


def encode_frame(kind: int, payload: bytes) -> bytes:
    """One frame: header, payload, zero padding to a multiple of 8 bytes (keeps arrays aligned)."""
    header = HEADER.pack(FRAME_MAGIC, kind, len(payload), zlib.crc32(payload))
    return header + payload + b"\0" * _pad8(len(payload))


def encode_json_frame(kind: int, obj: Any) -> bytes:
    return encode_frame(kind, json.dumps(obj, separators=(",", ":"), default=str).encode())


def encode_scalars(keys_id: int, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> bytes:
    """Rows of one key set: ids, then int64 steps [n], float64 wall times [n], float32 [n, k]."""
    n = len(steps)
    payload = b"".join(
        (
            ROWS.pack(keys_id, n),
            np.ascontiguousarray(steps, dtype="<i8").tobytes(),
            np.ascontiguousarray(times, dtype="<f8").tobytes(),
            np.ascontiguousarray(values, dtype="<f4").tobytes(),
        )
    )
    return encode_frame(KIND_SCALARS, payload)


def encode_tensor(tensor_id: int, steps: np.ndarray, arrays: list[np.ndarray]) -> bytes:
    """1-D arrays of one name: ids, int64 steps [n], int64 offsets [n+1], float32 values."""
    offsets = np.zeros(len(arrays) + 1, dtype="<i8")
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays).astype("<f4", copy=False) if arrays else np.zeros(0, "<f4")
    payload = b"".join(
        (
            ROWS.pack(tensor_id, len(arrays)),
            np.ascontiguousarray(steps, dtype="<i8").tobytes(),
            offsets.tobytes(),
            flat.tobytes(),
        )
    )
    return encode_frame(KIND_TENSOR, payload)


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    payload: memoryview
    end: int  # offset just past this frame (and its padding) in the buffer


def decode_frames(buf: bytes | memoryview, start: int = 0, *, verify: bool = True):
    """Yield complete, CRC-valid frames from `buf[start:]`; stop at the first that is not.

    The caller keeps `frame.end` of the last frame it got as the offset to resume from.
    `verify=False` skips the CRC: only for bytes this reader has already checked.
    """
    view = memoryview(buf)
    size = len(view)
    pos = start
    while pos + HEADER_SIZE <= size:
        magic, kind, length, crc = HEADER.unpack_from(view, pos)
        if magic != FRAME_MAGIC or length > MAX_PAYLOAD:
            return
        body = pos + HEADER_SIZE
        end = body + length + _pad8(length)
        if end > size:
            return
        payload = view[body : body + length]
        if verify and zlib.crc32(payload) != crc:
            return
        yield Frame(kind, payload, end)
        pos = end


def decode_json(payload: memoryview) -> Any:
    return json.loads(bytes(payload))


def decode_scalars(payload: memoryview, keys_of: dict[int, tuple[str, ...]]):
    """(keys_id, steps int64 [n], times float64 [n], values float32 [n, k]); zero-copy views."""
    keys_id, n = ROWS.unpack_from(payload, 0)
    k = len(keys_of[keys_id])
    pos = ROWS.size
    steps = np.frombuffer(payload, dtype="<i8", count=n, offset=pos)
    pos += 8 * n
    times = np.frombuffer(payload, dtype="<f8", count=n, offset=pos)
    pos += 8 * n
    values = np.frombuffer(payload, dtype="<f4", count=n * k, offset=pos).reshape(n, k)
    return keys_id, steps, times, values


def decode_tensor(payload: memoryview):
    """(tensor_id, steps int64 [n], list of float32 arrays)."""
    tensor_id, n = ROWS.unpack_from(payload, 0)
    pos = ROWS.size
    steps = np.frombuffer(payload, dtype="<i8", count=n, offset=pos)
    pos += 8 * n
    offsets = np.frombuffer(payload, dtype="<i8", count=n + 1, offset=pos)
    pos += 8 * (n + 1)
    flat = np.frombuffer(payload, dtype="<f4", count=int(offsets[-1]), offset=pos)
    return tensor_id, steps, [flat[offsets[i] : offsets[i + 1]] for i in range(n)]
