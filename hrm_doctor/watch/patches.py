"""Applying suggestions: hot patches through the control channel, guarded and recorded.

Every patch is recorded in `RUN/patches.jsonl` (append-only): proposed, requested, applied at
step N (with the values before and after), rejected with a reason, superseded, escalated. The
guards: only whitelisted hot keys within bounds (hrm_doctor.control), one patch per finding,
never the same overrides twice on one run, a cool-down between patches, a maximum per hour,
and one request in flight at a time. After a patch, the finding's episode is watched for
`effect_steps` steps (by default 5 % of the run, 50 to 1,000 steps): if it goes on, or if the
run has not recovered by then (its loss and accuracy back at their level before the onset:
watch/recovery.py), the patch is escalated to the rule's fallback (and, under `hrm-doctor run
--apply`, to a rollback and restart).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_doctor.control import is_hot, read_ack, write_request, write_stop_request
from hrm_doctor.rundir import META_FILE, PATCHES_FILE, append_jsonl, read_patches
from hrm_doctor.severity import severity_rank
from hrm_doctor.watch.recovery import RecentHistory, before_onset, judge, run_budget

_NOT_AUTO = {
    "hot": "info findings are proposed, not applied (apply it from the dashboard if wanted)",
    "restart": "only a critical finding rolls a run back and restarts it by itself",
}
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.@:+-]")


def patch_states(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """patch_id -> its newest record."""
    latest: dict[str, dict[str, Any]] = {}
    for r in read_patches(run_dir):
        pid = r.get("patch_id") or "p-" + _ID_SAFE.sub("-", str(r.get("finding_id")))
        r.setdefault("overrides", [])
        latest[pid] = dict(r, patch_id=pid, state=r.get("state", "proposed"))
    return latest


class PatchManager:
    """Turns a run's new findings into patches (or proposals), and follows them up."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        apply: bool,
        cooldown_s: float = 30.0,
        max_per_hour: int = 6,
        effect_steps: int | None = None,
        on_restart: Callable[[Any, list[str]], bool] | None = None,
        stop_hopeless: bool = True,
        manual: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.apply = apply
        self.cooldown_s = cooldown_s
        self.max_per_hour = max_per_hour
        self.effect_steps = effect_steps
        self.on_restart = on_restart
        self.stop_hopeless = stop_hopeless
        self.manual = manual
        self.path = self.run_dir / PATCHES_FILE
        self.latest = patch_states(self.run_dir)
        self._by_finding = {r.get("finding_id"): pid for pid, r in self.latest.items()}
        self._seen_overrides = {
            frozenset(r["overrides"])
            for r in self.latest.values()
            if r["state"] in ("requested", "applied", "escalated") and r.get("apply") == "hot"
        }
        self._findings: dict[str, Any] = {}
        # an applied patch's finding as first seen after the patch (its last step): only a
        # finding that grows past it went on (after a rollback the report still holds the
        # abandoned branch's later steps, which say nothing about the patch)
        self._seen_last: dict[str, int] = {}
        self._now = time.time()  # the clock of the current call (passed in: testable)

    # ---- the ledger -------------------------------------------------------------------------

    def _record(self, patch_id: str, state: str, **fields: Any) -> dict[str, Any]:
        base = dict(self.latest.get(patch_id, {}))
        base.update(fields, patch_id=patch_id, state=state, time=self._now)
        append_jsonl(self.path, [base])
        self.latest[patch_id] = base
        return base

    def _applied_times(self) -> list[float]:
        return [r["time"] for r in self.latest.values() if r["state"] in ("requested", "applied")]

    # ---- new findings -----------------------------------------------------------------------

    def on_finding(self, finding: Any, now: float | None = None) -> list[dict[str, Any]]:
        """Propose or apply the finding's suggestion (once per finding, ever)."""
        now = self._now = time.time() if now is None else now
        s = finding.suggestion
        overrides = list(s.overrides)
        if not overrides or finding.id in self._by_finding:
            return []
        self._findings[finding.id] = finding
        patch_id = "p-" + _ID_SAFE.sub("-", finding.id)
        self._by_finding[finding.id] = patch_id
        common = {
            "finding_id": finding.id,
            "rule": finding.rule,
            "category": finding.category,
            "severity": finding.severity,
            "overrides": overrides,
            "rationale": s.rationale,
            "monitor": s.monitor,
            "fallback": s.fallback,
            "first_step": finding.first_step,
        }
        hot = s.apply == "hot" and is_hot(overrides)
        auto = self._auto(finding.severity, "hot" if hot else "restart")
        if not hot:
            rec = self._record(patch_id, "proposed", apply="restart", auto=auto, **common)
            restart = self.apply and auto and self.on_restart is not None
            if restart and self.on_restart(finding, overrides):
                return [rec, self._record(patch_id, "applied", reason="rollback and restart")]
            if s.apply == "hot":
                rec = self._record(patch_id, "proposed", reason="not within the hot whitelist")
            elif self.apply and not auto:
                rec = self._record(patch_id, "proposed", reason=_NOT_AUTO["restart"])
            return [rec]
        rec = self._record(patch_id, "proposed", apply="hot", auto=auto, **common)
        if not self.apply:
            return [rec]
        if not auto:
            return [self._record(patch_id, "proposed", reason=_NOT_AUTO["hot"])]
        return [rec, *self._try_apply(patch_id, now)]

    def _auto(self, severity: str, kind: str) -> bool:
        """Whether a finding of this severity is acted on without a person: hot patches for
        warnings and worse, rollback-and-restart for critical findings only (issue 6). A
        person's request (the dashboard's Apply button) passes `manual=True`."""
        if self.manual:
            return True
        return severity_rank(severity) >= severity_rank(
            "critical" if kind == "restart" else "warning"
        )

    def _try_apply(self, patch_id: str, now: float) -> list[dict[str, Any]]:
        r = self.latest[patch_id]
        key = frozenset(r["overrides"])
        if key in self._seen_overrides:
            finding = self._findings.get(r["finding_id"]) or _finding_of(r)
            if self.apply and self.on_restart is not None and r.get("severity") == "critical":
                # the trouble came back after the same hot cure: it did not hold, the run is
                # damaged: roll back to before the trouble with that cure (and what config
                # warnings it confirms) as restart overrides
                self.on_restart(finding, self._restart_overrides(r["overrides"]))
                return [
                    self._record(
                        patch_id,
                        "escalated",
                        reason="the same patch was applied before on this run and the trouble "
                        "came back: rollback and restart",
                    )
                ]
            return [
                self._record(
                    patch_id, "rejected", reason="the same patch was applied before on this run"
                )
            ]
        if any(p["state"] == "requested" for p in self.latest.values()):
            return []  # one request in flight at a time; retried by poll()
        times = self._applied_times()
        if times and now - max(times) < self.cooldown_s:
            return []  # cool-down; retried by poll()
        if sum(1 for t in times if now - t < 3600) >= self.max_per_hour:
            return [
                self._record(
                    patch_id, "rejected", reason=f"more than {self.max_per_hour} patches in an hour"
                )
            ]
        write_request(self.run_dir, patch_id, r["overrides"], r["finding_id"])
        self._seen_overrides.add(key)
        return [self._record(patch_id, "requested")]

    def _restart_overrides(self, overrides: list[str]) -> list[str]:
        """A restart's overrides: the failed hot cure's, after the config warnings' proposals
        that were never applied (a config check said so at step 0; the run's own trouble has
        now confirmed it: a restart is the moment to take them). The cure's own values win."""
        from hrm_doctor.overrides import merge_overrides

        confirmed = [
            r["overrides"]
            for r in self.latest.values()
            if r.get("apply") == "restart"
            and r["state"] == "proposed"
            and r.get("category") == "config"
            and severity_rank(r.get("severity")) >= severity_rank("warning")
        ]
        return merge_overrides(*confirmed, overrides)

    # ---- follow-up --------------------------------------------------------------------------

    def budget_steps(self) -> int:
        """Steps a patch has to show its effect: given, or 5 % of the run (50 to 1,000)."""
        if self.effect_steps is None:
            budget = run_budget(self.run_dir)
            if (self.run_dir / META_FILE).is_file():  # known now: no need to read it each tick
                self.effect_steps = budget
            return budget
        return self.effect_steps

    def poll(
        self,
        now: float | None = None,
        report: list[Any] | None = None,
        last_step: int | None = None,
        history: RecentHistory | None = None,
    ) -> list[dict[str, Any]]:
        """Acknowledgements, deferred patches, and the effect of applied ones (judged on the
        run's recent `history` when given: did it recover?)."""
        now = self._now = time.time() if now is None else now
        out: list[dict[str, Any]] = []
        for pid, r in list(self.latest.items()):
            if r["state"] == "requested":
                ack = read_ack(self.run_dir, pid)
                if ack is None:
                    continue
                if ack.get("status") == "applied":
                    # the run as it was before the trouble: what recovery is judged against
                    onset = int(r.get("first_step") or 0)
                    pre = before_onset(history, onset) if history is not None else {}
                    out.append(
                        self._record(
                            pid,
                            "applied",
                            step=ack.get("step"),
                            before=ack.get("before"),
                            after=ack.get("after"),
                            before_onset=pre,
                        )
                    )
                else:
                    out.append(
                        self._record(
                            pid, "rejected", step=ack.get("step"), reason=ack.get("reason")
                        )
                    )
        if self.apply:
            for pid, r in list(self.latest.items()):
                if r["state"] == "proposed" and r.get("apply") == "hot" and r.get("auto", True):
                    out += self._try_apply(pid, now)
        if report is not None and last_step is not None:
            out += self._check_effect(report, last_step, history)
        return out

    def awaiting_effect(self) -> bool:
        """Whether an applied hot patch still waits for its effect check (needs the report)."""
        return any(
            r["state"] == "applied" and r.get("apply") == "hot" for r in self.latest.values()
        )

    def _check_effect(
        self, report: list[Any], last_step: int, history: RecentHistory | None
    ) -> list[dict[str, Any]]:
        by_id = {f.id: f for f in report}
        out = []
        budget = self.budget_steps()
        for pid, r in list(self.latest.items()):
            if r["state"] != "applied" or r.get("apply") != "hot" or r.get("step") is None:
                continue
            deadline = int(r["step"]) + budget
            f = by_id.get(r["finding_id"])
            seen = self._seen_last.setdefault(pid, f.last_step if f is not None else -1)
            went_on = f is not None and f.last_step >= deadline and f.last_step > seen
            recovered, why = True, f"no recurrence within {budget} steps"
            if not went_on and last_step >= deadline and history is not None:
                recovered, why = judge(history, r.get("before_onset") or {}, deadline)
            if went_on or not recovered:
                reason = (
                    f"the finding went on {budget} steps after the patch"
                    if went_on
                    else f"no recurrence within {budget} steps, but {why}"
                )
                out.append(
                    self._record(
                        pid,
                        "escalated",
                        reason=f"{reason}; fallback: {r.get('fallback') or '-'}",
                    )
                )
                finding = self._findings.get(r["finding_id"], f)
                if finding is None:  # a daemon restarted since: rebuild it from the record
                    finding = _finding_of(r)
                if self.apply and self.on_restart is not None:
                    self.on_restart(finding, self._restart_overrides(r["overrides"]))
                elif self.apply and self.stop_hopeless and finding.severity == "critical":
                    # no supervisor to restart it: stop the trial and free the machine
                    write_stop_request(self.run_dir, f"stop-{pid}", r["finding_id"])
                    out.append(
                        self._record(
                            pid,
                            "stopped",
                            reason="still critical after its patch: the run was asked to stop",
                        )
                    )
            elif last_step >= deadline:
                out.append(self._record(pid, "effective", reason=why))
        return out


def _finding_of(r: dict[str, Any]) -> Any:
    """The finding a patch record was made for, from the record alone (its ledger survives a
    daemon restart; the finding objects do not)."""
    from hrm_doctor.engine.finding import Finding

    first = int(r.get("first_step") or 0)
    return Finding(
        str(r.get("finding_id")), str(r.get("rule")), "", "", str(r.get("severity")),
        first, first, None, None, "",
    )  # fmt: skip


def describe_patch(run: str, r: dict[str, Any]) -> str:
    """One line for a console: what a patch record says happened."""
    what = " ".join(r.get("overrides") or [])
    state = r["state"]
    if state == "applied" and r.get("step") is not None:
        return f"{run}: patch {what} applied at step {r['step']} (before {r.get('before')})"
    reason = f": {r['reason']}" if r.get("reason") else ""
    return f"{run}: patch {what} ({r.get('apply', '?')}) {state}{reason}"
