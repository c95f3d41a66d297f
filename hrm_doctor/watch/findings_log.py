"""`RUN/findings.jsonl`: findings appended once each, surviving a daemon killed at any moment.

Each finding is one line written by one `write` call on an O_APPEND descriptor, so a SIGKILL
leaves whole lines only; a line torn by a power cut (no trailing newline) is cut off on the next
open. The file itself is the daemon's durable cursor: the ids in it are never written again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hrm_doctor.rundir import FINDINGS_FILE, append_jsonl, cut_torn_tail, read_findings


class FindingsLog:
    """Append-only findings of one run; `ids` are those already written."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / FINDINGS_FILE
        # An empty file says "watched, nothing found" (the dashboard tells it from "never watched").
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        cut_torn_tail(self.path)
        self.ids: set[str] = {f["id"] for f in read_findings(run_dir)}

    def append(self, findings: Iterable[Any]) -> list[Any]:
        """Write the findings whose id is new; return those written (in order)."""
        written, objects = [], []
        for f in findings:
            obj = f.to_json() if hasattr(f, "to_json") else dict(f)
            if obj["id"] in self.ids:
                continue
            self.ids.add(obj["id"])
            objects.append(obj)
            written.append(f)
        append_jsonl(self.path, objects, fsync=True)
        return written
