"""Reading a run in bounded memory: an index of its scalar frames, then windows of steps.

`RunReader.iter_scalars` reads a run of any length in chunks: a first pass over every segment
(in pieces of `PIECE_BYTES`) checks each frame and records, for runs of consecutive scalar
frames, their byte range and step range (a `_Group`, at most `GROUP_ROWS` rows); the sessions'
headers and step ranges come out of the same pass, so superseded rows are known before any row
is returned. Then windows of steps are cut so that each holds about `chunk_rows` rows across
all ranks; a window decodes only the groups that overlap it. Memory depends on the chunk, not
on the length of the run; a writer's step order (non-decreasing within a session) makes each
group overlap one or two windows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hrm_doctor.telemetry import schema

PIECE_BYTES = 16 << 20  # one read of a segment during the index pass
GROUP_ROWS = 2048  # scalar rows in one index entry (consecutive frames of one segment)
GROUP_BYTES = 4 << 20


@dataclass(slots=True)
class _Group:
    """Consecutive scalar frames of one segment: where they are and which steps they hold."""

    seg: Any  # the reader's Segment
    start: int  # byte offset of the first frame
    end: int  # byte offset just past the last frame
    lo: int  # smallest step
    hi: int  # largest step
    rows: int


def scan_segment(
    seg,
    size: int,
    on_frame: Callable[[schema.Frame], None],
    on_steps: Callable[[int, int, float], None],
    groups: list[_Group],
) -> None:
    """Read `seg` from its offset up to `size` in pieces: scalar frames become index groups
    (and `on_steps(lo, hi, last_time)`), every other frame goes to `on_frame` (keys, headers,
    tensors, ends). Advances `seg.offset`; stops at an incomplete frame (a writer mid-write)
    or at one that fails to decode."""
    group: _Group | None = None
    with open(seg.path, "rb") as f:
        while seg.offset < size:
            f.seek(seg.offset)
            buf = f.read(min(PIECE_BYTES, size - seg.offset))
            end = 0
            try:
                for frame in schema.decode_frames(buf):
                    if frame.kind == schema.KIND_SCALARS:
                        steps = scalar_steps(frame.payload)
                        if len(steps):
                            at = seg.offset + end
                            lo, hi, n = int(steps[0]), int(steps[-1]), len(steps)
                            on_steps(lo, hi, last_time(frame.payload))
                            full = group is not None and (
                                group.rows + n > GROUP_ROWS or at - group.start > GROUP_BYTES
                            )
                            if group is None or full:
                                group = _Group(seg, at, at, lo, hi, 0)
                                groups.append(group)
                            group.end = seg.offset + frame.end
                            group.lo, group.hi = min(group.lo, lo), max(group.hi, hi)
                            group.rows += n
                    else:
                        on_frame(frame)
                    end = frame.end
            except Exception:  # a frame that passed its CRC but does not decode: stop here
                seg.bad_at = seg.offset + end
                seg.offset += end
                return
            if end == 0:
                # nothing whole in this piece: a frame larger than the piece, or the tail
                need = _frame_size(buf)
                if need is None or seg.offset + need > size or need <= len(buf):
                    return
                f.seek(seg.offset)
                big = f.read(need)
                frames = list(schema.decode_frames(big))
                if not frames:
                    return
                # one oversized frame: index it on its own
                frame = frames[0]
                if frame.kind == schema.KIND_SCALARS:
                    steps = scalar_steps(frame.payload)
                    if len(steps):
                        on_steps(int(steps[0]), int(steps[-1]), last_time(frame.payload))
                        group = _Group(
                            seg, seg.offset, seg.offset + frame.end,
                            int(steps[0]), int(steps[-1]), len(steps),
                        )  # fmt: skip
                        groups.append(group)
                        group = None
                else:
                    on_frame(frame)
                end = frame.end
            seg.offset += end


def _frame_size(buf: bytes) -> int | None:
    if len(buf) < schema.HEADER_SIZE:
        return None
    magic, _, length, _ = schema.HEADER.unpack_from(buf, 0)
    if magic != schema.FRAME_MAGIC or length > schema.MAX_PAYLOAD:
        return None
    return schema.HEADER_SIZE + length + (-length) % 8


def scalar_steps(payload: memoryview) -> np.ndarray:
    """The steps of a scalar frame, without decoding its values."""
    _, n = schema.ROWS.unpack_from(payload, 0)
    return np.frombuffer(payload, dtype="<i8", count=n, offset=schema.ROWS.size)


def last_time(payload: memoryview) -> float:
    """The wall time of a scalar frame's last row."""
    _, n = schema.ROWS.unpack_from(payload, 0)
    return float(
        np.frombuffer(payload, dtype="<f8", count=1, offset=schema.ROWS.size + 16 * n - 8)[0]
    )


def decode_group(group: _Group) -> list[tuple]:
    seg = group.seg
    with open(seg.path, "rb") as f:
        f.seek(group.start)
        buf = f.read(group.end - group.start)
    out = []
    for frame in schema.decode_frames(buf, verify=False):  # checked by the index pass
        if frame.kind != schema.KIND_SCALARS:
            continue
        kid, steps, times, values = schema.decode_scalars(frame.payload, seg.keys)
        if len(steps):
            out.append((steps, times, seg.keys[kid], values))
    return out


def windows(groups: list[_Group], chunk_rows: int) -> Iterator[tuple[int, int, list[_Group]]]:
    """Successive step windows [lo, hi] of about `chunk_rows` rows, each with the groups that
    overlap it; every step's rows fall in exactly one window."""
    if not groups:
        return
    by_lo = sorted(groups, key=lambda g: (g.lo, g.start))
    los = [g.lo for g in by_lo]
    first, last = los[0], max(g.hi for g in groups)
    total_rows = sum(g.rows for g in groups)
    span = last - first + 1
    width = max(1, int(chunk_rows * span / max(total_rows, 1)))
    active: list[_Group] = []
    nxt = 0
    lo = first
    while lo <= last:
        hi = lo + width - 1
        while nxt < len(by_lo) and by_lo[nxt].lo <= hi:
            active.append(by_lo[nxt])
            nxt += 1
        active = [g for g in active if g.hi >= lo]
        if active:
            yield lo, hi, list(active)
            lo = hi + 1
        else:  # a gap in the steps: jump to the next group
            if nxt >= len(by_lo):
                return
            lo = by_lo[nxt].lo


def file_size(path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1
