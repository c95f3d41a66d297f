"""`RUN/findings.jsonl`: findings appended once each, surviving a daemon killed at any moment.

Each finding is one line written by one `write` call on an O_APPEND descriptor, so a SIGKILL
leaves whole lines only; a line torn by a power cut (no trailing newline) is cut off on the next
open. The file itself is the daemon's durable cursor: the ids in it are never written again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FINDINGS_FILE = "findings.jsonl"


def read_findings(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every whole finding line of a run (a torn or malformed line is skipped)."""
    path = Path(run_dir) / FINDINGS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "id" in obj:
            out.append(obj)
    return out


class FindingsLog:
    """Append-only findings of one run; `ids` are those already written."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / FINDINGS_FILE
        # An empty file says "watched, nothing found" (the dashboard tells it from "never watched").
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        self._repair_torn_tail()
        self.ids: set[str] = {f["id"] for f in read_findings(run_dir)}

    def _repair_torn_tail(self) -> None:
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            pass

    def append(self, findings: Iterable[Any]) -> list[Any]:
        """Write the findings whose id is new; return those written (in order)."""
        written = []
        lines = []
        for f in findings:
            obj = f.to_json() if hasattr(f, "to_json") else dict(f)
            if obj["id"] in self.ids:
                continue
            self.ids.add(obj["id"])
            lines.append(json.dumps(obj, default=str, allow_nan=True).encode() + b"\n")
            written.append(f)
        if lines:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                for line in lines:
                    os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return written
