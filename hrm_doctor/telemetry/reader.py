"""`RunReader`: a run directory read back as one timeline, whole (`scalars`) or incrementally (`poll`).

The reader keeps a byte offset per segment file and decodes only bytes it has not seen, so a
`poll` costs a directory listing and a `stat` per segment when nothing changed. It never raises
on a run that is being written or was cut off by a crash: an incomplete or corrupt frame ends
what is readable of that segment (for now: a growing file is read again from that offset).
When a rank resumes or is rolled back, rows of its earlier sessions from the branch step on are
superseded: readers show each (rank, step) once, with its newest values.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrm_doctor._io import read_json
from hrm_doctor.errors import NotARunDirectory, RunNotFound
from hrm_doctor.rundir import CONFIG_FILE, META_FILE, TELEMETRY_DIR
from hrm_doctor.telemetry import schema, stream
from hrm_doctor.telemetry.assemble import assemble
from hrm_doctor.telemetry.segments import (
    JOIN_ROWS,
    Block,
    ScalarRun,
    Segment,
    Session,
    TensorBlock,
)


class RunReader:
    """Read a run directory written by `RunWriter` (by any number of ranks and sessions).

    With ``keep_history=False`` (a daemon that only polls) rows are dropped once `poll` has
    returned them, so memory stays flat however long the run; `scalars` then reads the run anew.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, keep_history: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.keep_history = keep_history
        if not self.run_dir.exists():
            raise RunNotFound(f"{self.run_dir}: no such run directory")
        if not self.run_dir.is_dir():
            raise NotARunDirectory(f"{self.run_dir}: not a directory")
        self._tdir = self.run_dir / TELEMETRY_DIR
        if not self._tdir.is_dir() and not (self.run_dir / META_FILE).exists():
            raise RunNotFound(f"{self.run_dir}: not a run directory (no telemetry/ or meta.json)")
        self._segments: dict[str, Segment] = {}
        self._sessions: dict[tuple[int, int], Session] = {}
        self._blocks: list[Block] = []
        self._tensor_blocks: list[TensorBlock] = []
        self._polled_blocks = 0
        self._returned_max: dict[int, int] = {}  # rank -> largest step returned by poll
        self._polled_sessions: dict[int, int] = {}  # rank -> newest session poll has seen

    # ---- reading bytes ------------------------------------------------------------------------

    def _refresh(self) -> bool:
        """Decode whatever is new on disk. Returns True when anything new was decoded."""
        try:
            names = sorted(os.listdir(self._tdir))
        except (FileNotFoundError, NotADirectoryError):
            return False
        grew = False
        for name in names:
            seg = self._segments.get(name)
            if seg is None:
                m = schema.SEGMENT_RE.match(name)
                if not m:
                    continue
                rank, session, part = (int(g) for g in m.groups())
                seg = self._segments[name] = Segment(self._tdir / name, rank, session, part)
            grew |= self._read_segment(seg)
        return grew

    def _read_segment(self, seg: Segment) -> bool:
        try:
            size = os.stat(seg.path).st_size
        except FileNotFoundError:
            return False
        if size == seg.size_seen or size <= seg.offset:
            return False
        seg.size_seen = size
        try:
            with open(seg.path, "rb") as f:
                f.seek(seg.offset)
                buf = f.read(size - seg.offset)
        except OSError:
            return False
        before = len(self._blocks) + len(self._tensor_blocks)
        sess = self._sessions.get((seg.rank, seg.session))
        if sess is None:
            sess = self._sessions[(seg.rank, seg.session)] = Session(seg.rank, seg.session)
        # Consecutive frames of one key set become one block: a slow run flushes a row or two
        # per frame, and per-block work (not per-frame decoding) is what would dominate a read.
        run = ScalarRun()
        end = 0
        try:
            for frame in schema.decode_frames(buf):
                if frame.kind == schema.KIND_SCALARS:
                    kid, steps, times, values = schema.decode_scalars(frame.payload, seg.keys)
                    if len(steps):
                        if run.keys is not seg.keys[kid] or run.rows >= JOIN_ROWS:
                            self._close_run(run, seg, sess)
                            run.keys = seg.keys[kid]
                        run.add(steps, times, values)
                else:
                    self._apply_frame(seg, sess, frame)
                end = frame.end
        except Exception:  # a frame that passed its CRC but does not decode: stop here
            seg.bad_at = seg.offset + end
        self._close_run(run, seg, sess)
        seg.offset += end
        return len(self._blocks) + len(self._tensor_blocks) > before

    def _close_run(self, run: ScalarRun, seg: Segment, sess: Session) -> None:
        if run.keys is None or not run.steps:
            return
        steps, times, values = run.take()
        self._blocks.append(Block(seg.rank, seg.session, steps, times, run.keys, values))
        self._note_steps(sess, steps, times)

    def _apply_frame(
        self, seg: Segment, sess: Session, frame: schema.Frame, keep_tensors: bool = True
    ) -> None:
        kind = frame.kind
        if kind == schema.KIND_TENSOR:
            tid, steps, arrays = schema.decode_tensor(frame.payload)
            if len(steps):
                if keep_tensors:
                    self._tensor_blocks.append(
                        TensorBlock(seg.rank, seg.session, seg.tensors[tid], steps, arrays)
                    )
                self._note_steps(sess, steps, None)
        elif kind == schema.KIND_KEYS:
            obj = schema.decode_json(frame.payload)
            if "names" in obj:
                seg.keys[int(obj["id"])] = tuple(obj["names"])
            else:
                seg.tensors[int(obj["id"])] = str(obj["tensor"])
        elif kind == schema.KIND_HEADER:
            sess.header = schema.decode_json(frame.payload)
        elif kind == schema.KIND_END:
            sess.end = schema.decode_json(frame.payload)

    @staticmethod
    def _note_steps(sess: Session, steps: np.ndarray, times: np.ndarray | None) -> None:
        lo, hi = int(steps.min()), int(steps.max())
        sess.first_step = lo if sess.first_step is None else min(sess.first_step, lo)
        sess.last_step = hi if sess.last_step is None else max(sess.last_step, hi)
        if times is not None and len(times):
            t = float(times[-1])
            sess.last_time = t if sess.last_time is None else max(sess.last_time, t)

    def _cutoffs(self) -> dict[tuple[int, int], int]:
        """(rank, session) -> first step superseded by a later session of the same rank."""
        cut: dict[tuple[int, int], int] = {}
        by_rank: dict[int, list[Session]] = {}
        for s in self._sessions.values():
            by_rank.setdefault(s.rank, []).append(s)
        for sessions in by_rank.values():
            sessions.sort(key=lambda s: s.session)
            limit: int | None = None
            for s in reversed(sessions):
                if limit is not None:
                    cut[(s.rank, s.session)] = limit
                b = s.branch_step
                if b is not None:
                    limit = b if limit is None else min(limit, b)
        return cut

    # ---- the public API -----------------------------------------------------------------------

    def scalars(
        self,
        metrics: Sequence[str] | None = None,
        *,
        with_mask: bool = False,
        with_time: bool = False,
        aggregate: str | None = None,
    ):
        """Every scalar row: columns ``step``, ``rank``, then one float32 column per metric.

        Sorted by (step, rank); NaN where a metric was not logged at that row (or was logged as
        NaN: pass ``with_mask=True`` to also get a bool array, True where it was logged).
        `metrics` selects columns by name or glob (``grad/norm/H.*``). ``with_time`` adds a
        ``time`` column (unix seconds of the `log` call). ``aggregate`` ("mean", "max", ...)
        reduces across ranks per step and drops the ``rank`` column.
        """
        if not self.keep_history:
            return RunReader(self.run_dir).scalars(
                metrics, with_mask=with_mask, with_time=with_time, aggregate=aggregate
            )
        self._refresh()
        return assemble(self._blocks, self._cutoffs(), metrics, with_mask, with_time, aggregate)

    def changed(self) -> bool:
        """Whether anything new is on disk for `poll` (a listing and a stat per segment: the
        cheap question a daemon asks of a thousand quiet runs)."""
        self._refresh()
        if self._blocks[self._polled_blocks :] if self.keep_history else self._blocks:
            return True
        return any(
            s.first_step is not None and session > self._polled_sessions.get(rank, -1)
            for (rank, session), s in self._sessions.items()
        )

    def poll(
        self,
        metrics: Sequence[str] | None = None,
        *,
        with_mask: bool = False,
        with_time: bool = False,
    ):
        """Only the rows that are new since the previous `poll` (an empty frame when none).

        After a resume or rollback, rows for steps returned before can come again with their
        new values; ``df.attrs["rollback"]`` then maps each such rank to the branch step.
        """
        self._refresh()
        new = self._blocks[self._polled_blocks :]
        if self.keep_history:
            self._polled_blocks = len(self._blocks)
        else:
            self._blocks = []
            self._tensor_blocks = []
        rollback: dict[int, int] = {}
        for (rank, session), sess in self._sessions.items():
            seen = self._polled_sessions.get(rank)
            if seen is not None and session > seen:
                b = sess.branch_step
                returned = self._returned_max.get(rank)
                if b is not None and returned is not None and b <= returned:
                    rollback[rank] = min(b, rollback.get(rank, b))
        for (rank, session), sess in self._sessions.items():
            if sess.first_step is not None:
                self._polled_sessions[rank] = max(session, self._polled_sessions.get(rank, session))
        result = assemble(new, self._cutoffs(), metrics, with_mask, with_time, None)
        df = result[0] if with_mask else result
        self._note_returned(df)
        for rank, b in rollback.items():
            self._returned_max[rank] = min(self._returned_max.get(rank, b), b - 1)
        if rollback:
            df.attrs["rollback"] = rollback
        return result

    def iter_scalars(
        self,
        metrics: Sequence[str] | None = None,
        *,
        chunk_rows: int = 65536,
        with_mask: bool = False,
        with_time: bool = False,
    ) -> Iterator[Any]:
        """The rows of `scalars`, in successive frames of about `chunk_rows` rows (all ranks, in
        step order: every row of one step is in one frame), in memory that does not grow with
        the run's length (telemetry/stream.py). After the last frame, `poll` returns only the
        rows written since. A reader that has read before iterates with a fresh one."""
        if self._segments:
            fresh = RunReader(self.run_dir, keep_history=False)
            yield from fresh.iter_scalars(
                metrics, chunk_rows=chunk_rows, with_mask=with_mask, with_time=with_time
            )
            return
        groups = self._index()
        cut = self._cutoffs()
        indexed = {k: s for k, s in self._sessions.items() if s.first_step is not None}
        for lo, hi, active in stream.windows(groups, chunk_rows):
            blocks = []
            for g in active:  # a group on a window boundary is decoded for each: nothing held
                seg = g.seg
                for steps, times, keys, values in stream.decode_group(g):
                    if steps[0] > hi or steps[-1] < lo:
                        continue
                    m = (steps >= lo) & (steps <= hi)
                    if not m.all():
                        steps, times, values = steps[m], times[m], values[m]
                    blocks.append(Block(seg.rank, seg.session, steps, times, keys, values))
            box = [assemble(blocks, cut, metrics, with_mask, with_time, None)]
            del blocks
            df = box[0][0] if with_mask else box[0]
            if not len(df):
                continue
            self._note_returned(df)
            del df
            # a suspended generator keeps its locals: hand the chunk over without keeping it
            # (a daemon catching up a thousand runs holds a thousand of these generators)
            yield box.pop()
        # sessions that appeared during the iteration are news for `poll` (a resume: rollback)
        for rank, session in indexed:
            self._polled_sessions[rank] = max(session, self._polled_sessions.get(rank, session))

    def _note_returned(self, df) -> None:
        """The newest step returned per rank (a later session from a step at or below it is a
        rollback)."""
        steps, ranks = df["step"].to_numpy(), df["rank"].to_numpy()
        if not len(steps):
            return
        one = ranks.min() == ranks.max()
        for rank in [int(ranks[0])] if one else np.unique(ranks).tolist():
            top = int(steps.max() if one else steps[ranks == rank].max())
            self._returned_max[rank] = max(top, self._returned_max.get(rank, -1))

    def _index(self) -> list[stream._Group]:
        """The index pass of `iter_scalars`: every segment read once, scalar frames indexed,
        every other frame applied (tensor frames only noted: their arrays are not kept)."""
        groups: list[stream._Group] = []
        try:
            names = sorted(os.listdir(self._tdir))
        except (FileNotFoundError, NotADirectoryError):
            return groups
        for name in names:
            m = schema.SEGMENT_RE.match(name)
            if not m:
                continue
            rank, session, part = (int(g) for g in m.groups())
            seg = self._segments[name] = Segment(self._tdir / name, rank, session, part)
            sess = self._sessions.get((rank, session))
            if sess is None:
                sess = self._sessions[(rank, session)] = Session(rank, session)
            size = stream.file_size(seg.path)
            seg.size_seen = size

            def on_steps(lo: int, hi: int, t: float, sess=sess) -> None:
                self._note_steps(sess, np.array([lo, hi]), np.array([t]))

            def on_frame(frame, seg=seg, sess=sess) -> None:
                self._apply_frame(seg, sess, frame, keep_tensors=False)

            with contextlib.suppress(OSError):
                stream.scan_segment(seg, size, on_frame, on_steps, groups)
        return groups

    def tensors(self, name: str) -> pd.DataFrame:
        """The 1-D arrays logged under `name`: columns ``step``, ``rank``, ``values``."""
        if not self.keep_history:
            return RunReader(self.run_dir).tensors(name)
        self._refresh()
        cut = self._cutoffs()
        rows: list[tuple[int, int, np.ndarray]] = []
        for b in self._tensor_blocks:
            if b.name != name:
                continue
            c = cut.get((b.rank, b.session))
            for s, a in zip(b.steps.tolist(), b.arrays, strict=True):
                if c is None or s < c:
                    rows.append((s, b.rank, a))
        rows.sort(key=lambda r: (r[0], r[1]))
        out: dict[tuple[int, int], np.ndarray] = {}
        for s, r, a in rows:
            out[(s, r)] = a  # the newest of duplicates wins
        return pd.DataFrame(
            {
                "step": np.array([k[0] for k in out], dtype=np.int64),
                "rank": np.array([k[1] for k in out], dtype=np.int64),
                "values": list(out.values()),
            }
        )

    @property
    def metrics(self) -> list[str]:
        """Scalar metric names, in order of first appearance."""
        if not self.keep_history:
            return RunReader(self.run_dir).metrics
        self._refresh()
        seen: dict[str, None] = {}
        for b in self._blocks:
            for k in b.keys:
                seen.setdefault(k, None)
        return list(seen)

    @property
    def declared_tensors(self) -> list[str]:
        """Tensor names the writers declared in the segments read so far (no arrays read)."""
        return sorted({n for seg in self._segments.values() for n in seg.tensors.values()})

    @property
    def tensor_names(self) -> list[str]:
        if not self.keep_history:
            return RunReader(self.run_dir).tensor_names
        self._refresh()
        return list(dict.fromkeys(b.name for b in self._tensor_blocks))

    @property
    def config(self) -> dict[str, Any]:
        return read_json(self.run_dir / CONFIG_FILE, default={}) or {}

    @property
    def meta(self) -> dict[str, Any]:
        meta = dict(read_json(self.run_dir / META_FILE, default={}) or {})
        self._refresh()
        if "world_size" not in meta:
            sizes = [s.header.get("world_size") for s in self._sessions.values() if s.header]
            if sizes:
                meta["world_size"] = max(x for x in sizes if x is not None)
        return meta

    @property
    def ranks(self) -> list[int]:
        self._refresh()
        return sorted({s.rank for s in self._sessions.values()})

    @property
    def last_write_time(self) -> float | None:
        self._refresh()
        times = [s.last_time for s in self._sessions.values() if s.last_time is not None]
        return max(times) if times else None

    @property
    def lineage(self) -> list[dict[str, Any]]:
        """One entry per writer session and rank: when it started, from which step, how it ended."""
        self._refresh()
        out = []
        for (rank, session), s in sorted(self._sessions.items()):
            out.append(
                {
                    "rank": rank,
                    "session": session,
                    "start_time": s.header.get("start_time"),
                    "pid": s.header.get("pid"),
                    "host": s.header.get("host"),
                    "resume_from_step": s.header.get("resume_from_step"),
                    "branch_step": s.branch_step,
                    "first_step": s.first_step,
                    "last_step": s.last_step,
                    "status": self._session_status(s),
                }
            )
        return out

    @property
    def corrupt_segments(self) -> list[tuple[str, int]]:
        """Segments with a complete frame that does not decode: (file name, byte offset)."""
        return [
            (seg.path.name, seg.bad_at) for seg in self._segments.values() if seg.bad_at is not None
        ]

    @property
    def size_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.run_dir):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(root, f)).st_size
        return total

    @staticmethod
    def _session_status(s: Session) -> str:
        if s.end is not None:
            return str(s.end.get("status", "finished"))
        pid, host = s.header.get("pid"), s.header.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return "crashed"
            except PermissionError:
                return "running"
            return "running"
        return "running"  # another host: cannot tell; callers may judge by last_write_time

    @property
    def status(self) -> str:
        """'empty', 'running' (any rank's newest session is alive), 'finished', 'failed' or 'crashed'."""
        self._refresh()
        if not self._sessions:
            return "empty"
        newest: dict[int, Session] = {}
        for s in self._sessions.values():
            if s.rank not in newest or s.session > newest[s.rank].session:
                newest[s.rank] = s
        statuses = {self._session_status(s) for s in newest.values()}
        for status in ("running", "crashed", "failed"):
            if status in statuses:
                return status
        return "finished"
