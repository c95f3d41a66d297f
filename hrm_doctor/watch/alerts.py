"""Alerts on new findings: `--on-finding 'COMMAND'` gets the finding as JSON on stdin.

Grouped and rate-limited per (run, rule) like Alertmanager's group_interval: a rule that keeps
firing on one run alerts at most once per `repeat_s`; nothing floods.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any


class CommandAlerter:
    def __init__(self, command: str, repeat_s: float = 600.0) -> None:
        self.command = command
        self.repeat_s = repeat_s
        self._last: dict[tuple[str, str], float] = {}
        self._procs: list[subprocess.Popen] = []

    def __call__(self, run: str, finding: Any, now: float) -> bool:
        key = (run, finding.rule)
        last = self._last.get(key)
        if last is not None and now - last < self.repeat_s:
            return False
        self._last[key] = now
        payload = dict(finding.to_json(), run=run)
        proc = subprocess.Popen(self.command, shell=True, stdin=subprocess.PIPE)
        try:
            proc.stdin.write(json.dumps(payload, default=str).encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass
        self._procs.append(proc)
        self._procs = [p for p in self._procs if p.poll() is None]
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        for p in self._procs:
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
