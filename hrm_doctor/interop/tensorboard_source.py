"""Source adapter for TensorBoard logdirs: scalars and histograms from event files.

Records are read with tensorboard's own record reader (the one its event_file_loader uses
without TensorFlow) and parsed with its own ``Event`` protobuf; the cursor is a byte offset per
event file (the stub reader takes no start offset, so we seek its file handle). Histograms
become ``TAG/mean``, ``TAG/std``, ``TAG/min`` and ``TAG/max`` scalars.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError
from hrm_doctor.interop.importer import Batch

EVENT_GLOB = "events.out.tfevents.*"
OUTPUT_DIR = "hrm-doctor"  # converted runs of `watch` live here by default: never read as input
_RECORD_OVERHEAD = 16  # length (8) + its CRC (4) + data CRC (4)
_MAX_RECORDS_PER_READ = 200_000


def event_files(logdir: Path) -> list[Path]:
    files = [
        p
        for p in logdir.rglob(EVENT_GLOB)
        if p.is_file() and OUTPUT_DIR not in p.relative_to(logdir).parts
    ]
    return sorted(files, key=lambda p: (str(p.parent), p.name))


def looks_like_tensorboard_logdir(path: Path) -> bool:
    return path.is_dir() and bool(event_files(path))


def _histogram_stats(tag: str, histo: Any) -> dict[str, float]:
    n = histo.num
    if n <= 0:
        return {}
    mean = histo.sum / n
    var = max(histo.sum_squares / n - mean * mean, 0.0)
    return {f"{tag}/mean": mean, f"{tag}/std": math.sqrt(var), f"{tag}/min": histo.min,
            f"{tag}/max": histo.max}  # fmt: skip


def _tensor_histogram_stats(tag: str, arr: Any) -> dict[str, float]:
    # The histograms plugin's tensor form: rows of (left edge, right edge, count).
    if arr.ndim != 2 or arr.shape[1] != 3 or arr[:, 2].sum() <= 0:
        return {}
    centers = (arr[:, 0] + arr[:, 1]) / 2
    counts = arr[:, 2]
    n = counts.sum()
    mean = float((centers * counts).sum() / n)
    var = float((counts * (centers - mean) ** 2).sum() / n)
    nz = arr[counts > 0]
    return {f"{tag}/mean": mean, f"{tag}/std": math.sqrt(var), f"{tag}/min": float(nz[0, 0]),
            f"{tag}/max": float(nz[-1, 1])}  # fmt: skip


def event_values(event: Any, prefix: str, tensor_util: Any) -> dict[str, float]:
    """The scalar values of one Event (its summary), histograms summarised."""
    out: dict[str, float] = {}
    for v in event.summary.value:
        tag = prefix + v.tag
        which = v.WhichOneof("value")
        if which == "simple_value":
            out[tag] = float(v.simple_value)
        elif which == "histo":
            out.update(_histogram_stats(tag, v.histo))
        elif which == "tensor":
            plugin = v.metadata.plugin_data.plugin_name
            if plugin not in ("scalars", "histograms", ""):
                continue
            try:
                arr = tensor_util.make_ndarray(v.tensor)
            except Exception:  # a dtype the stub cannot convert: not a number we can use
                continue
            if arr.size == 1 and arr.dtype.kind in "biuf":
                out[tag] = float(arr.reshape(-1)[0])
            elif plugin == "histograms":
                out.update(_tensor_histogram_stats(tag, arr))
    return out


class TensorBoardSource:
    """Read the event files under a logdir. `live`: hold back the newest step (more tags for it
    may still arrive) until a later step or the end of the import."""

    kind = "tensorboard"

    def __init__(self, logdir: str | Path, *, live: bool = False) -> None:
        self.logdir = Path(logdir)
        self.live = live
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UserError(
                f"{logdir}: reading TensorBoard logs needs tensorboard: pip install tensorboard"
            ) from None
        if not live:
            if not self.logdir.is_dir():
                raise UserError(f"{logdir}: no such TensorBoard logdir")
            if not event_files(self.logdir):
                raise UserError(
                    f"{logdir}: not a TensorBoard logdir (no {EVENT_GLOB} files under it)"
                )
        self.identity = str(self.logdir.absolute())

    def _read_file(self, path: Path, offset: int, rows: dict[int, dict[str, float]], prefix: str):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub import errors
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
        from tensorboard.util import tensor_util

        reader = PyRecordReader_New(str(path))
        # The stub reader takes no start offset and its GFile cannot seek: give it a plain file
        # positioned at the cursor (it only ever calls read(n) on it).
        reader.file_handle.close()
        reader.file_handle = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        n = 0
        try:
            reader.file_handle.seek(offset)
            event = event_pb2.Event()
            while n < _MAX_RECORDS_PER_READ:
                try:
                    reader.GetNext()
                except errors.OutOfRangeError:
                    break
                except errors.DataLossError as exc:
                    if "truncated" in str(exc):  # an event still being written: next time
                        break
                    raise UserError(
                        f"{path}: corrupt TensorBoard event file at byte {offset}"
                    ) from None
                record = reader.record()
                try:
                    event.ParseFromString(record)
                except Exception:
                    raise UserError(
                        f"{path}: corrupt TensorBoard event file at byte {offset} (not an Event)"
                    ) from None
                offset += len(record) + _RECORD_OVERHEAD
                n += 1
                if event.HasField("summary"):
                    values = event_values(event, prefix, tensor_util)
                    if values:
                        rows.setdefault(int(event.step), {}).update(values)
        finally:
            reader.file_handle.close()
        return offset, n >= _MAX_RECORDS_PER_READ

    def read_new(self, cursor: dict[str, Any], *, final: bool) -> Batch:
        offsets: dict[str, int] = dict(cursor.get("files", {}))
        pending = cursor.get("pending")  # [step, values] held back by the previous call
        rows: dict[int, dict[str, float]] = {}
        if pending:
            rows[int(pending[0])] = dict(pending[1])
        files = event_files(self.logdir) if self.logdir.is_dir() else []
        dirs = {p.parent for p in files}
        more = False
        for path in files:
            rel = str(path.relative_to(self.logdir))
            # Several run subdirectories (add_scalars, or a parent logdir): prefix their tags.
            sub = str(path.parent.relative_to(self.logdir))
            prefix = "" if len(dirs) == 1 or sub == "." else sub.replace("\\", "/") + "/"
            offsets[rel], hit_limit = self._read_file(path, offsets.get(rel, 0), rows, prefix)
            more = more or hit_limit
        steps = sorted(rows)
        new_cursor: dict[str, Any] = {"files": offsets}
        if steps and self.live and not final and not more:
            held = steps.pop()
            new_cursor["pending"] = [held, rows[held]]
        return Batch(rows=[(s, rows[s]) for s in steps], cursor=new_cursor, more=more)
