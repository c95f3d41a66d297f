"""`hrm-doctor run -- COMMAND`: launch a trainer, watch it, heal it (hot patch, or rollback and restart).

On a finding whose suggestion needs a restart (or a hot patch that did not help), the
supervisor stops the trainer, picks the newest checkpoint from before the finding's first step,
and relaunches the same command with the overrides, `resume=<checkpoint>` and `skip_batches`
(the PaLM recipe: skip the data around the spike). Each restart is recorded in
`RUN/lineage.jsonl`; at most `max_restarts`, then it stops and says why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from hrm_doctor.runs import is_run_dir
from hrm_doctor.watch.monitor import RunMonitor
from hrm_doctor.watch.patches import PatchManager
from hrm_doctor.watch.source import ChangeSource

LINEAGE_FILE = "lineage.jsonl"
_CKPT_RE = re.compile(r"^step_(\d{8,})$")


def run_dir_of(command: list[str]) -> str | None:
    """The value of a `run_dir=` Hydra override in a command line, if any."""
    for arg in command:
        for prefix in ("run_dir=", "+run_dir=", "++run_dir="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return None


def with_overrides(command: list[str], overrides: list[str]) -> list[str]:
    """The command with each `key=value` set once (Hydra refuses a key given twice)."""
    keys = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    kept = [a for a in command if not ("=" in a and a.split("=", 1)[0].lstrip("+") in keys)]
    return kept + list(overrides)


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (written atomically by the trainer), oldest first."""
    root = run_dir / "checkpoints"
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(int(m.group(1)), p) for p in entries if (m := _CKPT_RE.match(p.name)) and p.is_dir()]
    return sorted(found)


def read_lineage(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(run_dir) / LINEAGE_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class Supervisor:
    def __init__(
        self,
        command: list[str],
        rule_set: Any,
        *,
        apply: bool,
        console: Any,
        max_restarts: int = 3,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.command = list(command)
        given = run_dir_of(self.command)
        if given is None:
            given = f"runs/run-{time.strftime('%Y%m%d-%H%M%S')}"
            self.command.append(f"run_dir={given}")
        self.run_dir = Path(given)
        self.rule_set = rule_set
        self.apply = apply
        self.console = console
        self.max_restarts = max_restarts
        self.stop_timeout_s = stop_timeout_s
        self.restarts = len([e for e in read_lineage(self.run_dir) if e.get("event") == "restart"])
        self.overrides: list[str] = []
        self._pending: tuple[Any, list[str]] | None = None
        self.proc: subprocess.Popen | None = None
        self.gave_up: str | None = None

    # ---- the trainer process ------------------------------------------------------------------

    def _launch(self, extra: list[str]) -> None:
        cmd = with_overrides(self.command, extra)
        self.console.note("launching: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, start_new_session=True)

    def _stop_trainer(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            p.wait()

    # ---- healing ------------------------------------------------------------------------------

    def request_restart(self, finding: Any, overrides: list[str]) -> bool:
        """Called by the patch manager: roll back and restart at the next loop turn."""
        if not self.apply:
            return False
        if self._pending is None:
            self._pending = (finding, list(overrides))
        else:  # several findings at once: one restart with all their overrides (the first's onset)
            first, before = self._pending
            merged = {o.split("=", 1)[0]: o for o in list(overrides) + before}
            self._pending = (min(first, finding, key=lambda f: f.first_step), list(merged.values()))
        return True

    def _restart(self) -> bool:
        finding, overrides = self._pending
        self._pending = None
        if self.restarts >= self.max_restarts:
            self.gave_up = (
                f"still unhealthy after {self.restarts} restart(s): {finding.rule} at step "
                f"{finding.first_step} ({finding.message})"
            )
            return False
        self._stop_trainer()
        before = [(s, p) for s, p in checkpoints(self.run_dir) if s < finding.first_step]
        merged = {o.split("=", 1)[0]: o for o in self.overrides + overrides}
        self.overrides = list(merged.values())
        if before:
            step, path = before[-1]
            skip = max(0, finding.last_step - step)
            extra = [*self.overrides, f"resume={path}", f"skip_batches={skip}"]
        else:
            step, path, skip = 0, None, 0
            extra = [*self.overrides, "resume=never"]
        self.restarts += 1
        from hrm_doctor.watch.findings_log import read_findings

        # the findings of the abandoned branch stay in findings.jsonl (the record) but no
        # longer describe the run: `hrm-doctor runs` and the dashboard judge the new timeline
        superseded = [f["id"] for f in read_findings(self.run_dir) if f["first_step"] >= step]
        entry = {
            "event": "restart",
            "time": time.time(),
            "restart": self.restarts,
            "finding_id": finding.id,
            "rule": finding.rule,
            "from_step": step,
            "checkpoint": str(path) if path else None,
            "skip_batches": skip,
            "overrides": self.overrides,
            "superseded_findings": superseded,
        }
        with open(self.run_dir / LINEAGE_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.console.note(
            f"rolling back to step {step} ({'checkpoint ' + path.name if path else 'no checkpoint: from scratch'})"
            f" and restarting with {' '.join(self.overrides)}"
            + (f", skipping {skip} batches" if skip else "")
        )
        self._launch(extra)
        return True

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        self._launch([])
        source = ChangeSource(self.run_dir, tick_s=0.5)
        monitor: RunMonitor | None = None
        try:
            for _ in source.changes(stop):
                if monitor is None and is_run_dir(self.run_dir):
                    patches = PatchManager(
                        self.run_dir, apply=self.apply, on_restart=self.request_restart
                    )
                    monitor = RunMonitor(self.run_dir, self.rule_set, patches=patches)
                if monitor is not None:
                    self._report(monitor, monitor.update(time.time()))
                if self._pending is not None:
                    if not self._restart():
                        self.console.note(f"giving up: {self.gave_up}")
                        self._stop_trainer()
                        return 1
                    continue
                if self.proc.poll() is not None:
                    if monitor is not None:
                        time.sleep(0.3)  # the writer's last flush
                        self._report(monitor, monitor.update(time.time()) + monitor.finish())
                        if self._pending is not None:
                            if self._restart():
                                continue
                            self.console.note(f"giving up: {self.gave_up}")
                            return 1
                    return self.proc.returncode
            self._stop_trainer()
            return 130
        finally:
            source.close()
            if monitor is not None:
                monitor.close()
            self._stop_trainer()

    def _report(self, m: RunMonitor, found: list[Any]) -> None:
        from hrm_doctor.watch.daemon import _describe_patch

        for f in found:
            self.console.finding(self.run_dir.name, f)
        for r in m.patch_events:
            self.console.note(_describe_patch(self.run_dir.name, r))
        m.patch_events = []
