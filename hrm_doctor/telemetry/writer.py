"""`RunWriter`: per-step telemetry from a training loop, like `wandb.log`, crash-safe and cheap.

`log` only validates and appends to an in-memory buffer; a background thread encodes and
appends frames to this rank's own segment file every `flush_interval_s`, so the training loop
never waits on the disk and a reader sees a step well within 0.5 s. A process killed at any
byte loses at most the frames not yet written; everything before stays readable.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrm_doctor import __version__
from hrm_doctor._io import atomic_write_json, read_json
from hrm_doctor.rundir import CONFIG_FILE, META_FILE, TELEMETRY_DIR
from hrm_doctor.telemetry import schema

# The fast path of `log` converts a step's values with one `array("f", ...)` call (~5 us for 256):
# it raises TypeError for anything that is not a real scalar (strings, None, arrays, lists), which
# sends the step to the slow path that explains the problem or splits off the 1-D arrays.
# Arrays of float32 are compact and not tracked by the garbage collector.
# The newest step is held back this long, so that several `log` calls for one step (train
# metrics, then probe metrics) land in one row instead of being split across two flushes.
_HOLD_NEWEST_S = 0.15


def _to_scalar_or_array(name: str, value: Any) -> float | np.ndarray:
    """Convert one logged value; raise ValueError naming the metric when it is not numeric."""
    if isinstance(value, (bool, int, float, np.number)) and not isinstance(value, complex):
        try:
            return float(value)
        except (OverflowError, TypeError):
            raise ValueError(f"metric {name!r}: value {value!r} does not fit a float") from None
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # torch, without importing torch
        # .float(): bf16 and bool tensors have no numpy dtype. .cpu() syncs a CUDA tensor: the
        # probe batches its tensors so that this happens once per logged step.
        value = value.detach().float().cpu().numpy()
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r}: a list of non-numeric values") from None
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"metric {name!r}: array of dtype {value.dtype} is not numeric")
        if value.ndim == 0:
            return float(value)
        if value.ndim != 1:
            raise ValueError(
                f"metric {name!r}: only scalars and 1-D arrays can be logged, got shape "
                f"{tuple(value.shape)}"
            )
        return value.astype(np.float32)
    raise ValueError(f"metric {name!r}: value of type {type(value).__name__} is not numeric")


def _rows_to_array(block: list, width: int) -> np.ndarray:
    """Rows of float32 arrays -> one float32 [n, width] array."""
    return np.frombuffer(b"".join(r[3] for r in block), dtype=np.float32).reshape(len(block), width)


class RunWriter:
    """Append per-step metrics of one rank to a run directory.

    >>> with RunWriter("runs/exp42", config=cfg, rank=0, world_size=1) as w:
    ...     w.log({"train/lm_loss": 1.9, "act/halt_steps": halt_steps}, step=i)

    Several ranks may write one run directory at once: each writes only its own files; rank 0
    also writes ``meta.json`` and ``config.json``. A writer opened on a run that already has
    telemetry (a resume, or a rollback) starts a new session: the steps it logs from
    ``resume_from_step`` (or from its first logged step) on supersede those logged before.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        *,
        meta: Mapping[str, Any] | None = None,
        resume_from_step: int | None = None,
        flush_interval_s: float = 0.1,
        program: str | None = None,
        program_version: str | None = None,
    ) -> None:
        if not (isinstance(rank, int) and isinstance(world_size, int) and 0 <= rank < world_size):
            raise ValueError(f"rank {rank!r} must be an int in [0, world_size={world_size!r})")
        self.run_dir = Path(run_dir)
        self.rank = rank
        self.world_size = world_size
        self.flush_interval_s = float(flush_interval_s)
        self._tdir = self.run_dir / TELEMETRY_DIR
        self._tdir.mkdir(parents=True, exist_ok=True)

        self._lock = threading.Lock()  # guards the buffers
        self._io_lock = threading.Lock()  # serialises encoding + writing
        self._rows: list[tuple[int, float, tuple[str, ...], array]] = []
        self._tensors: list[tuple[int, str, np.ndarray]] = []
        self._valid_keys: set[tuple[str, ...]] = set()
        self._keys_ids: dict[tuple[str, ...], int] = {}
        self._tensor_ids: dict[str, int] = {}
        self._last_step = -1
        self._last_keys: tuple[str, ...] = ()
        self._closed = False
        self._error: BaseException | None = None

        self.session = self._open_session(resume_from_step)
        if rank == 0:
            self._write_run_files(config, meta, program, program_version)

        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"hrm-doctor-writer-r{rank}", daemon=True
        )
        self._thread.start()
        # Flush what was logged if the program exits without closing (not on kill -9).
        ref = weakref.ref(self)
        self._atexit = lambda: (w := ref()) is not None and w.close()
        atexit.register(self._atexit)

    # ---- set-up -------------------------------------------------------------------------------

    def _open_session(self, resume_from_step: int | None) -> int:
        sessions = [
            int(m.group(2))
            for p in os.listdir(self._tdir)
            if (m := schema.SEGMENT_RE.match(p)) and int(m.group(1)) == self.rank
        ]
        session = max(sessions, default=0) + 1
        self._header = {
            "format": "hrm-doctor-telemetry",
            "schema_version": schema.SCHEMA_VERSION,
            "rank": self.rank,
            "world_size": self.world_size,
            "session": session,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start_time": time.time(),
            "resume_from_step": resume_from_step,
        }
        while True:
            self._part = 0
            try:
                self._fd = os.open(
                    self._tdir / schema.segment_name(self.rank, session, 0),
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                    0o644,
                )
                break
            except FileExistsError:  # another process of this rank raced us: take the next
                session += 1
                self._header["session"] = session
        self._size = 0
        self._write(schema.encode_json_frame(schema.KIND_HEADER, self._header))
        return session

    def _write_run_files(self, config, meta, program, program_version) -> None:
        meta_path = self.run_dir / META_FILE
        old = read_json(meta_path, default={}) or {}
        now = time.time()
        new = {
            "schema_version": schema.SCHEMA_VERSION,
            "run_id": old.get("run_id") or uuid.uuid4().hex[:12],
            "start_time": old.get("start_time", now),
            "start_time_iso": old.get(
                "start_time_iso", time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
            ),
            "world_size": self.world_size,
            "program": program or Path(sys.argv[0]).name or "python",
            "program_version": program_version or __version__,
            "hrm_doctor_version": __version__,
            "host": socket.gethostname(),
            "sessions": int(old.get("sessions", 0)) + 1,
        }
        for key, value in old.items():
            new.setdefault(key, value)
        new.update(meta or {})
        atomic_write_json(meta_path, new)
        if config is not None:
            atomic_write_json(self.run_dir / CONFIG_FILE, dict(config))

    def set_meta(self, **fields: Any) -> None:
        """Record more run metadata (e.g. ``num_params`` once the model exists). Rank 0 only."""
        if self.rank != 0:
            return
        path = self.run_dir / META_FILE
        meta = read_json(path, default={}) or {}
        meta.update(fields)
        atomic_write_json(path, meta)

    # ---- logging --------------------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one step's metrics (scalars and 1-D arrays). Never touches the disk.

        `step` defaults to the previous step + 1. Logging the same step again merges into it;
        a smaller step than the last one raises ValueError.
        """
        if self._closed:
            raise RuntimeError(f"RunWriter for {self.run_dir} is closed")
        if step is None:
            step = self._last_step + 1
        elif type(step) is not int:
            if not isinstance(step, (int, np.integer)) or isinstance(step, bool):
                raise ValueError(f"step {step!r} must be a non-negative int")
            step = int(step)
        if step < self._last_step:
            raise ValueError(
                f"step {step} goes backwards: the last step logged was {self._last_step}"
            )
        if step < 0:
            raise ValueError(f"step {step} must be a non-negative int")
        now = time.time()
        keys = tuple(metrics)
        tensors: list[tuple[str, np.ndarray]] = []
        values = None
        # tuple equality with the previous step's keys is an identity scan, no hashing
        if keys == self._last_keys:
            keys = self._last_keys
        if keys is self._last_keys or keys in self._valid_keys:
            try:
                values = array("f", metrics.values())
            except (TypeError, OverflowError, ValueError):
                values = None
        if values is None:
            keys, values, tensors = self._convert(metrics)
        self._last_keys = keys
        with self._lock:
            rows = self._rows
            if keys:
                if rows and rows[-1][0] == step:  # a second call for the same step: merge
                    merged = dict(zip(rows[-1][2], rows[-1][3], strict=True))
                    merged.update(zip(keys, values, strict=True))
                    mkeys = tuple(merged)
                    self._valid_keys.add(mkeys)
                    rows[-1] = (step, now, mkeys, array("f", merged.values()))
                else:
                    rows.append((step, now, keys, values))
            for name, arr in tensors:
                self._tensors.append((step, name, arr))
        self._last_step = step

    def log_block(self, names: Sequence[str], steps: Any, values: Any) -> None:
        """Many steps of the same scalar metrics at once (an importer's rows): the same as one
        `log` per row, validated once. `steps` strictly increasing, from the last step logged
        on; `values` is (len(steps), len(names))."""
        if self._closed:
            raise RuntimeError(f"RunWriter for {self.run_dir} is closed")
        keys = tuple(names)
        steps = np.asarray(steps, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(len(steps), len(keys))
        if not len(steps):
            return
        if keys not in self._valid_keys:
            for name in keys:
                schema.check_metric_name(name)
            self._valid_keys.add(keys)
        if steps[0] < max(self._last_step, 0) or (len(steps) > 1 and (np.diff(steps) <= 0).any()):
            raise ValueError("log_block: steps must increase, from the last step logged on")
        if steps[0] == self._last_step:  # merges into a step logged before: the general path
            self.log(dict(zip(keys, values[0].tolist(), strict=True)), step=int(steps[0]))
            steps, values = steps[1:], values[1:]
        if not len(steps):
            return
        times = np.full(len(steps), time.time())
        with self._io_lock:  # what was logged before goes first, then the block as one frame
            with self._lock:
                rows, tensors = self._rows, self._tensors
                self._rows, self._tensors = [], []
            if self._size >= schema.SEGMENT_MAX_BYTES:
                self._rotate()
            data = self._encode(rows, tensors) + self._encode_frame(keys, steps, times, values)
            self._write(data)
        self._last_step = int(steps[-1])

    def _convert(self, metrics: Mapping[str, Any]):
        """The slow path: validate names, convert values, split scalars from 1-D arrays."""
        keys: list[str] = []
        values: list[float] = []
        tensors: list[tuple[str, np.ndarray]] = []
        for name, value in metrics.items():
            schema.check_metric_name(name)
            converted = _to_scalar_or_array(name, value)
            if isinstance(converted, np.ndarray):
                tensors.append((name, converted))
            else:
                keys.append(name)
                values.append(converted)
        key_tuple = tuple(keys)
        self._valid_keys.add(key_tuple)
        return key_tuple, array("f", values), tensors

    # ---- flushing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything logged so far, now (readers see it when this returns)."""
        self._flush(force=True)
        if self._error is not None:
            raise RuntimeError(f"telemetry writer for {self.run_dir} failed") from self._error

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self._flush(force=False)
            except BaseException as exc:  # keep training alive; report on flush()/close()
                self._error = exc

    def _flush(self, force: bool) -> None:
        with self._io_lock:
            with self._lock:
                rows, tensors = self._rows, self._tensors
                held: list = []
                held_t: list = []
                if not force and rows and time.time() - rows[-1][1] < _HOLD_NEWEST_S:
                    held = [rows.pop()]
                    newest = held[0][0]
                    held_t = [t for t in tensors if t[0] == newest]
                    tensors = [t for t in tensors if t[0] != newest]
                self._rows, self._tensors = held, held_t
            if rows or tensors:
                if self._size >= schema.SEGMENT_MAX_BYTES:
                    self._rotate()  # before encoding: the new part declares its own key sets
                self._write(self._encode(rows, tensors))

    def _encode_frame(self, keys, steps, times, values) -> bytes:
        """One scalar frame (and the declaration of its key set, the first time)."""
        head = b""
        kid = self._keys_ids.get(keys)
        if kid is None:
            kid = self._keys_ids[keys] = len(self._keys_ids)
            head = schema.encode_json_frame(schema.KIND_KEYS, {"id": kid, "names": keys})
        return head + schema.encode_scalars(kid, steps, times, values)

    def _encode(self, rows, tensors) -> bytes:
        chunks: list[bytes] = []
        # Consecutive rows with the same key set become one frame; frames stay in step order,
        # so a reader that sees a prefix of this write never sees a later step before an earlier.
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][2] != rows[start][2]:
                keys = rows[start][2]
                block = rows[start:i]
                values = _rows_to_array(block, len(keys))
                steps = np.fromiter((r[0] for r in block), dtype=np.int64, count=len(block))
                times = np.fromiter((r[1] for r in block), dtype=np.float64, count=len(block))
                chunks.append(self._encode_frame(keys, steps, times, values))
                start = i
        by_name: dict[str, list[tuple[int, np.ndarray]]] = {}
        for step, name, arr in tensors:
            by_name.setdefault(name, []).append((step, arr))
        for name, items in by_name.items():
            tid = self._tensor_ids.get(name)
            if tid is None:
                tid = self._tensor_ids[name] = len(self._tensor_ids)
                chunks.append(
                    schema.encode_json_frame(schema.KIND_KEYS, {"id": tid, "tensor": name})
                )
            steps = np.array([s for s, _ in items], dtype=np.int64)
            chunks.append(schema.encode_tensor(tid, steps, [a for _, a in items]))
        return b"".join(chunks)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def _rotate(self) -> None:
        """Start the next part: key sets are re-declared so each part decodes on its own."""
        os.close(self._fd)
        self._part += 1
        self._fd = os.open(
            self._tdir / schema.segment_name(self.rank, self.session, self._part),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
            0o644,
        )
        self._size = 0
        self._keys_ids.clear()
        self._tensor_ids.clear()
        header = dict(self._header, part=self._part)
        self._size += os.write(self._fd, schema.encode_json_frame(schema.KIND_HEADER, header))

    # ---- closing --------------------------------------------------------------------------------

    def close(self, status: str = "finished") -> None:
        """Write what is buffered and mark the session finished. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        atexit.unregister(self._atexit)
        try:
            self._flush(force=True)
            self._write(
                schema.encode_json_frame(schema.KIND_END, {"status": status, "time": time.time()})
            )
        finally:
            os.close(self._fd)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(status="finished" if exc_type is None else "failed")
