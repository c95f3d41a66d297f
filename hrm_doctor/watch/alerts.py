"""Alerts on new findings, grouped and rate-limited per (run, rule) like Alertmanager's
group_interval: a rule that keeps firing on one run alerts at most once per `repeat_s`.

- `CommandAlerter`: `--on-finding 'COMMAND'` gets the finding (plus "run") as JSON on stdin.
- `WandbAlerter`: `wandb.alert` for runs whose config says `wandb.mode: online` (W&B then sends
  it by Slack or e-mail, as the user set up in W&B). The doctor logs to a W&B run of its own,
  grouped with the trainer's, so it never writes into the trainer's history.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


class RateLimit:
    """True at most once per `repeat_s` for each key."""

    def __init__(self, repeat_s: float) -> None:
        self.repeat_s = repeat_s
        self._last: dict[tuple[str, str], float] = {}

    def allow(self, key: tuple[str, str], now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.repeat_s:
            return False
        self._last[key] = now
        return True


class CommandAlerter:
    def __init__(self, command: str, repeat_s: float = 600.0) -> None:
        self.command = command
        self.limit = RateLimit(repeat_s)
        self._procs: list[subprocess.Popen] = []

    def __call__(self, run: str, finding: Any, now: float, run_dir: Path | None = None) -> bool:
        if not self.limit.allow((run, finding.rule), now):
            return False
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


def wandb_mode_of(config: dict[str, Any]) -> str:
    """The W&B mode a run logs with: the WANDB_MODE environment wins over the run's config."""
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    wb = config.get("wandb") if isinstance(config, dict) else None
    return str((wb or {}).get("mode") or "disabled")


class WandbAlerter:
    _LEVELS = {"critical": "ERROR", "warning": "WARN", "info": "INFO"}

    def __init__(self, repeat_s: float = 600.0) -> None:
        self.limit = RateLimit(repeat_s)
        self.repeat_s = repeat_s
        self._runs: dict[str, Any] = {}

    def __call__(self, run: str, finding: Any, now: float, run_dir: Path | None = None) -> bool:
        if run_dir is None:
            return False
        from hrm_doctor._io import read_json

        config = read_json(Path(run_dir) / "config.json", default={}) or {}
        if wandb_mode_of(config) != "online" or not self.limit.allow((run, finding.rule), now):
            return False
        import wandb

        wb_run = self._runs.get(run)
        if wb_run is None:
            project = (config.get("wandb") or {}).get("project") or "hrm-doctor"
            wb_run = self._runs[run] = wandb.init(
                project=project,
                name=f"hrm-doctor {run}",
                group=Path(run).name,
                job_type="hrm-doctor",
                reinit="create_new",
                settings=wandb.Settings(console="off", silent=True),
            )
        s = finding.suggestion
        text = f"{finding.message}\nSuggested: {' '.join(s.overrides) or '-'} ({s.apply}). {s.rationale}"
        wb_run.alert(
            title=f"{finding.severity}: {finding.rule} on {run}",
            text=text,
            level=getattr(wandb.AlertLevel, self._LEVELS.get(finding.severity, "INFO")),
            wait_duration=int(self.repeat_s),
        )
        return True

    def close(self) -> None:
        for r in self._runs.values():
            r.finish()
        self._runs.clear()
