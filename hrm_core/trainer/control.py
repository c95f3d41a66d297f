"""The control channel: the doctor's live patches of hot keys, requested and acknowledged as files.

The doctor writes `RUN/control/requests/<id>.json` atomically:
    {"id": "<id>", "overrides": ["lr=5e-05", "grad_clip_norm=1.0"],
     "finding_id": "grad-explosion@1200" | null, "requested_at": <unix seconds>}
At each step boundary rank 0 checks the directory with one `os.stat` (its mtime changes when a
file is renamed into it), parses new requests, and the trainer broadcasts them so that every
rank applies the same values from the same step. Each request is answered once, atomically, in
`RUN/control/acks/<id>.json`:
    {"id", "status": "applied"|"rejected", "step": N, "reason": str|null,
     "before": {key: old}, "after": {key: new}, "finding_id", "requested_at", "acked_at"}
`step` is the first step that used the new values (for a rejection: the step at which it was
examined). A request is all-or-nothing: one bad override rejects it; nothing here raises.
See docs/control.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_doctor._io import atomic_write_json, read_json
from hrm_doctor.control import (  # the whitelist is shared with the doctor: one source of truth
    HOT_KEYS,
    HotKey,
    parse_override,
)
from hrm_doctor.rundir import ACKS_DIR, CONTROL_DIR, REQUESTS_DIR

__all__ = ["HOT_KEYS", "HotKey", "parse_override"]
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")
RACY_WINDOW_S = 2.0
"""A directory changed this recently is listed again: two renames within one mtime tick (a
coarse-grained file system) must not hide the second request."""
PARTIAL_GRACE_S = 2.0
"""An unparseable request younger than this is retried (a writer that did not write atomically);
after it, it is rejected."""


@dataclass
class HotParams:
    """The current values of the hot keys (the config's, then patched)."""

    values: dict[str, float | None]

    @classmethod
    def from_config(cls, cfg: Any) -> HotParams:
        return cls(
            {
                "lr": cfg.lr,
                "puzzle_emb_lr": cfg.puzzle_emb_lr,
                "weight_decay": cfg.weight_decay,
                "puzzle_emb_weight_decay": cfg.puzzle_emb_weight_decay,
                "grad_clip_norm": cfg.grad_clip_norm,
                "arch.halt_exploration_prob": cfg.arch.halt_exploration_prob,
            }
        )

    def __getitem__(self, key: str) -> float | None:
        return self.values[key]

    def update(self, values: dict[str, float | None]) -> dict[str, float | None]:
        """Apply `values`; return the old values of those keys."""
        before = {key: self.values[key] for key in values}
        self.values.update(values)
        return before


@dataclass(frozen=True)
class Request:
    """One parsed request; `error` is set when it must be rejected."""

    id: str
    values: dict[str, float | None] = field(default_factory=dict)
    finding_id: str | None = None
    requested_at: float | None = None
    error: str | None = None
    stop: bool = False
    """`{"action": "stop"}`: stop the run at this step boundary (a checkpoint is saved), e.g. a
    sweep trial that stays critical after its patches, so the next trial gets the machine."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "values": self.values,
            "finding_id": self.finding_id,
            "requested_at": self.requested_at,
            "error": self.error,
            "stop": self.stop,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        return cls(**data)


def parse_request(raw: bytes | str, file_id: str) -> Request:
    """A request file's content -> Request (never raises: problems become `error`)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Request(file_id, error=f"unparseable JSON ({exc})")
    if not isinstance(data, dict):
        return Request(file_id, error="a request must be a JSON object")
    finding_id = data.get("finding_id")
    requested_at = data.get("requested_at")
    if finding_id is not None and not isinstance(finding_id, str):
        finding_id = str(finding_id)
    if isinstance(requested_at, bool) or not isinstance(requested_at, int | float | None):
        return Request(file_id, finding_id=finding_id, error="requested_at must be unix seconds")

    def reject(reason: str) -> Request:
        return Request(file_id, finding_id=finding_id, requested_at=requested_at, error=reason)

    if data.get("id", file_id) != file_id:
        return reject(f"id {data.get('id')!r} differs from the file name {file_id}.json")
    action = data.get("action", "patch")
    if action == "stop":
        return Request(file_id, {}, finding_id, requested_at, stop=True)
    if action != "patch":
        return reject(f"action {action!r}: use 'patch' (the default) or 'stop'")
    overrides = data.get("overrides")
    if not isinstance(overrides, list) or not overrides:
        return reject("'overrides' must be a non-empty list of 'key=value' strings")
    values: dict[str, float | None] = {}
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            return reject(str(exc))
        if key in values:
            return reject(f"'{key}' is set twice")
        values[key] = value
    return Request(file_id, values, finding_id, requested_at)


class ControlChannel:
    """Rank 0's side of the channel: finds new requests cheaply and writes the acks."""

    def __init__(self, run_dir: str | os.PathLike[str], active: bool = True) -> None:
        self.root = Path(run_dir) / CONTROL_DIR
        self.requests_dir = self.root / REQUESTS_DIR
        self.acks_dir = self.root / ACKS_DIR
        self.active = active
        self._mtime_ns: int | None = None
        self._retry = False
        self._handled: set[str] = set()
        if active:
            self.requests_dir.mkdir(parents=True, exist_ok=True)
            self.acks_dir.mkdir(parents=True, exist_ok=True)
            self._handled = {p.stem for p in self.acks_dir.glob("*.json")}

    def poll(self, now: float | None = None) -> list[Request]:
        """New requests, oldest first; one `os.stat` when nothing changed (the common case)."""
        if not self.active:
            return []
        now = time.time() if now is None else now
        try:
            mtime_ns = os.stat(self.requests_dir).st_mtime_ns
        except FileNotFoundError:
            return []
        racy = now - mtime_ns / 1e9 < RACY_WINDOW_S
        if mtime_ns == self._mtime_ns and not racy and not self._retry:
            return []
        self._mtime_ns = mtime_ns
        self._retry = False
        found: list[tuple[float, str, Request]] = []
        for path in self.requests_dir.iterdir():
            file_id = path.stem
            if path.suffix != ".json" or path.name.startswith(".") or file_id in self._handled:
                continue
            try:
                raw = path.read_bytes()
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if not ID_RE.match(file_id):
                request = Request(file_id, error=f"id {file_id!r}: use letters, digits, _.@:+-")
            else:
                request = parse_request(raw, file_id)
            if request.error and request.error.startswith("unparseable") and age < PARTIAL_GRACE_S:
                self._retry = True  # maybe still being written: look again next step
                continue
            self._handled.add(file_id)
            found.append((request.requested_at or 0.0, file_id, request))
        return [r for _, _, r in sorted(found, key=lambda t: (t[0], t[1]))]

    def acknowledge(
        self,
        request: Request,
        *,
        status: str,
        step: int,
        before: dict[str, float | None] | None = None,
        after: dict[str, float | None] | None = None,
    ) -> Path | None:
        """Write `acks/<id>.json` atomically (rank 0 only)."""
        if not self.active:
            return None
        ack = {
            "id": request.id,
            "status": status,
            "step": step,
            "reason": request.error,
            "before": before or {},
            "after": after or {},
            "finding_id": request.finding_id,
            "requested_at": request.requested_at,
            "acked_at": time.time(),
        }
        path = self.acks_dir / f"{request.id}.json"
        atomic_write_json(path, ack)
        return path

    def applied_after(self, step: int) -> list[dict[str, Any]]:
        """Acks of requests applied after `step` (oldest first): a resume from a checkpoint at
        `step` replays them at their recorded step, so it continues as the run did."""
        acks = [read_json(p) for p in self.acks_dir.glob("*.json")]
        applied = [
            a
            for a in acks
            if isinstance(a, dict) and a.get("status") == "applied" and a.get("step", 0) > step
        ]
        return sorted(applied, key=lambda a: (a["step"], a.get("acked_at") or 0.0))


def apply_hot(hot: HotParams, opt: Any, emb_opt: Any, model: Any) -> None:
    """Push the hot values into the optimizers and the model (the lrs are set every step)."""
    for group in opt.param_groups:
        group["weight_decay"] = hot["weight_decay"]
    if emb_opt is not None:
        for group in emb_opt.param_groups:
            group["weight_decay"] = hot["puzzle_emb_weight_decay"]
    model.halt_exploration_prob = float(hot["arch.halt_exploration_prob"])


class StepBoundary:
    """The host-side decisions of each step boundary, identical on every rank: rank 0's new
    patch requests (applied from the next step), the doctor's stop requests (acted on at the
    boundary after they are decided), and any rank's stop signal. One tiny gloo all-reduce per
    step; a broadcast only when there are requests."""

    def __init__(self, info: Any, channel: ControlChannel, stop: Any) -> None:
        self.info, self.channel, self.stop = info, channel, stop
        self.decided: list[Request] = []  # patches decided at the last boundary
        self.doctor_stops: list[Request] = []  # stop requests, acted on at the next boundary

    def exchange(self, probe_scalars: int) -> tuple[list[int], bool]:
        """Agree on this boundary's news: the flags (requests?, stop signal, ...) and whether
        every rank's probe returned as many scalars (the sums are then all-reduced together)."""
        from hrm_core.trainer.distributed import any_flags, broadcast_json

        requests = self.channel.poll()  # rank 0: one os.stat when nothing changed
        flags = any_flags(
            self.info, [int(bool(requests)), self.stop.code, probe_scalars, -probe_scalars]
        )
        if flags[0]:
            shared = broadcast_json(self.info, [r.to_json() for r in requests])
            self.decided = [Request.from_json(r) for r in shared]
        return flags, flags[2] == -flags[3]

    def apply_decided(self, hot: HotParams, step: int, note: Any) -> None:
        """At the start of a step: the patches decided at the last boundary take effect."""
        for request in self.decided:
            if request.stop:
                self.doctor_stops.append(request)  # acted on at this step's boundary
            else:
                note(apply_request(request, hot, self.channel, step))
        self.decided = []

    def take_stops(self, hot: HotParams, step: int, note: Any) -> list[Request]:
        """At the end of a step: the doctor's stop requests (a hopeless sweep trial)."""
        stops = self.doctor_stops + [r for r in self.decided if r.stop]
        self.doctor_stops = []
        for request in stops:
            note(apply_request(request, hot, self.channel, step))
        self.decided = [r for r in self.decided if not r.stop]
        return stops


def apply_request(request: Request, hot: HotParams, channel: ControlChannel, step: int) -> str:
    """Apply one decided request (every rank, the same step) and acknowledge it (rank 0);
    returns the console line."""
    if request.error:
        channel.acknowledge(request, status="rejected", step=step)
        return f"step {step}: patch {request.id} rejected: {request.error}"
    if request.stop:
        channel.acknowledge(request, status="applied", step=step)
        return f"step {step}: stopped by the doctor ({request.finding_id or request.id})"
    before = hot.update(request.values)
    channel.acknowledge(
        request, status="applied", step=step, before=before, after=dict(request.values)
    )
    changes = ", ".join(f"{k} {before[k]} -> {v}" for k, v in request.values.items())
    return f"step {step}: patch {request.id} applied: {changes}"


_MISSING = object()


def _dotted(data: dict[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def restart_overrides(saved_config: dict[str, Any], config: dict[str, Any]) -> set[str]:
    """Hot keys whose value in this session's config differs from the checkpoint's config: a
    restart's overrides (a rollback with lr=...) win over the values saved in the checkpoint,
    live-patched or not."""
    changed = set()
    for key in HOT_KEYS:
        saved, now = _dotted(saved_config, key), _dotted(config, key)
        if saved is not _MISSING and saved != now:
            changed.add(key)
    return changed


def replay_plan(
    acks: list[dict[str, Any]] | None, overridden: set[str]
) -> dict[int, dict[str, float | None]]:
    """Patches acked after the checkpoint, by the step they applied at, minus the keys this
    restart overrides: replaying them makes a resumed run continue as the original did."""
    plan: dict[int, dict[str, float | None]] = {}
    for ack in acks or []:
        values = {k: v for k, v in (ack.get("after") or {}).items() if k not in overridden}
        if values:
            plan.setdefault(int(ack["step"]), {}).update(values)
    return plan
