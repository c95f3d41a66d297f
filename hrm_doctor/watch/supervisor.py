"""`hrm-doctor run -- COMMAND`: launch a trainer, watch it, heal it (hot patch, or rollback and restart).

The watching is the daemon's own loop (`Daemon.run`) over the one run directory; the supervisor
adds the trainer process and, after each turn of that loop, what a finding asked of it. On a
finding whose suggestion needs a restart (or a hot patch that did not help), it stops the
trainer, picks the newest checkpoint from before the finding's first step (none when the run
had learned nothing by then: its loss no lower than at the start), and relaunches the
same command with the overrides, `resume=<checkpoint>` and `skip_batches` (the PaLM recipe:
skip the data around the spike). Each restart is recorded in `RUN/lineage.jsonl`; at most
`max_restarts`, then it stops and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_doctor.overrides import merge_overrides, run_dir_of, with_overrides
from hrm_doctor.rundir import (
    LINEAGE_FILE,
    append_jsonl,
    checkpoints,
    live_findings,
    read_findings,
    read_lineage,
)
from hrm_doctor.watch.daemon import Daemon
from hrm_doctor.watch.patches import PatchManager
from hrm_doctor.watch.process import TrainerProcess
from hrm_doctor.watch.recovery import learned_by, run_budget

# The trainer's telemetry writer flushes on exit: give its last frames a moment to land.
_LAST_FLUSH_S = 0.3


def _onset_order(finding: Any) -> tuple[bool, int]:
    """Findings from the run's data come before config checks; then the earliest onset."""
    return (finding.category == "config", finding.first_step)


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
        launch: Callable[[list[str]], TrainerProcess] = TrainerProcess,
    ) -> None:
        self.command = list(command)
        self.launch = launch  # a local process, or a Slurm job step (hrm_doctor.cluster.step)
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
        self.trainer: TrainerProcess | None = None
        self.daemon: Daemon | None = None
        self.gave_up: str | None = None
        self.exit_code: int | None = None

    # ---- the trainer process ------------------------------------------------------------------

    def _launch(self, extra: list[str]) -> None:
        cmd = with_overrides(self.command, extra)
        self.console.note("launching: " + " ".join(cmd))
        self.trainer = self.launch(cmd)

    def _stop_trainer(self) -> None:
        if self.trainer is not None:
            self.trainer.stop(self.stop_timeout_s)

    # ---- healing ------------------------------------------------------------------------------

    def request_restart(self, finding: Any, overrides: list[str]) -> bool:
        """Called by the patch manager: roll back and restart after this turn of the loop."""
        if not self.apply:
            return False
        if self._pending is None:
            self._pending = (finding, list(overrides))
        else:  # several findings at once: one restart with all their overrides, from the
            # earliest onset the run's data showed (a config check fires at step 0, but the
            # run was fine until its dynamic trouble began: roll back to just before that)
            first, before = self._pending
            merged = merge_overrides(overrides, before)
            self._pending = (min(first, finding, key=_onset_order), merged)
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
        onset = self._trouble_onset(finding)
        before = [(s, p) for s, p in checkpoints(self.run_dir) if s < onset]
        if before and not learned_by(self.run_dir, before[-1][0]):
            self.console.note(
                f"the run had learned nothing by step {before[-1][0]} (its loss no lower than "
                "at the start): restarting from scratch rather than from its checkpoint"
            )
            before = []
        self.overrides = merge_overrides(self.overrides, overrides)
        if before:
            step, path = before[-1]
            skip = max(0, finding.last_step - step)
            extra = [*self.overrides, f"resume={path}", f"skip_batches={skip}"]
        else:
            step, path, skip = 0, None, 0
            extra = [*self.overrides, "resume=never"]
        self.restarts += 1
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
        append_jsonl(self.run_dir / LINEAGE_FILE, [entry])
        self.console.note(
            f"rolling back to step {step} ({'checkpoint ' + path.name if path else 'no checkpoint: from scratch'})"
            f" and restarting with {' '.join(self.overrides)}"
            + (f", skipping {skip} batches" if skip else "")
        )
        self._launch(extra)
        return True

    def _trouble_onset(self, finding: Any) -> int:
        """Where the trouble a restart cures began: the finding's onset, or an earlier critical
        finding of the run's data on this branch, not long before (ten patch budgets): a
        trouble that came back after a hot cure was never cured, and rolling back to just
        before its return would keep the damage."""
        if finding.category == "config":
            return finding.first_step
        reach = 10 * run_budget(self.run_dir)
        earlier = [
            int(f["first_step"])
            for f in live_findings(self.run_dir)
            if f.get("severity") == "critical"
            and f.get("category") != "config"
            and finding.first_step - reach <= int(f["first_step"]) <= finding.first_step
        ]
        return min([finding.first_step, *earlier])

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """Launch the trainer and follow it to its end; the exit code of `hrm-doctor run`."""
        self._launch([])
        self.daemon = Daemon(
            self.run_dir,
            self.rule_set,
            console=self.console,
            tick_s=0.5,
            patches=lambda run: PatchManager(
                run, apply=self.apply, on_restart=self.request_restart
            ),
        )
        try:
            self.daemon.run(stop, after_turn=self._after_turn)
        finally:
            self._stop_trainer()
        return 130 if self.exit_code is None else self.exit_code

    def _after_turn(self) -> bool:
        """What the last turn's findings asked for; True when supervision is over."""
        if self._pending is None and not self.trainer.running():
            if self.daemon.monitors:
                time.sleep(_LAST_FLUSH_S)
                self.daemon.settle()  # the end of the data: across-rank rules judge the rest
            if self._pending is None:
                self.exit_code = self.trainer.returncode
                return True
        if self._pending is not None and not self._restart():
            self.console.note(f"giving up: {self.gave_up}")
            self.exit_code = 1
            return True
        return False
