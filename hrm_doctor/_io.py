"""Small file helpers shared by the telemetry, the daemon and the CLI: atomic writes, JSON reads."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old file or the new one.

    The temporary file lives in the same directory (rename is atomic only within a file system)
    and, when `durable`, is fsync'ed before the rename, so a power cut cannot leave a renamed
    but empty file (a file rewritten every few seconds that can be made again skips that).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, durable: bool = True) -> None:
    """Atomically write `obj` as indented JSON (non-JSON values such as paths become strings)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=True) + "\n"
    atomic_write_bytes(path, text.encode(), durable=durable)


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON file, or return `default` when it is missing or not (yet) valid JSON."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return default
