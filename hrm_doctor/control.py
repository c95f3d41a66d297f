"""The control channel between the doctor and a running trainer: the hot keys, their bounds,
and the request/acknowledgement files (the trainer's side is hrm_core/trainer/control.py).

The doctor writes `RUN/control/requests/<id>.json` atomically:
    {"id", "overrides": ["lr=5e-05", ...], "finding_id", "requested_at"}
or, to stop a run that stays critical after its patches (a sweep trial), {"id", "action": "stop"}
and the trainer answers once in `RUN/control/acks/<id>.json`:
    {"id", "status": "applied"|"rejected", "step", "reason", "before", "after", ...}
See docs/control.md. This module imports nothing heavy: the daemon and the CLI use it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrm_doctor._io import atomic_write_json, read_json
from hrm_doctor.rundir import ACKS_DIR, CONTROL_DIR, REQUESTS_DIR


@dataclass(frozen=True)
class HotKey:
    """A key the running trainer may change, with its bounds."""

    name: str
    low: float
    high: float
    low_inclusive: bool
    nullable: bool = False
    doc: str = ""

    def check(self, value: float | None) -> str | None:
        """None when `value` is allowed, else the reason."""
        if value is None:
            return None if self.nullable else f"{self.name}: null is not allowed"
        if not math.isfinite(value):
            return f"{self.name}={value}: must be finite"
        low_ok = value >= self.low if self.low_inclusive else value > self.low
        if not low_ok or value > self.high:
            bracket = "[" if self.low_inclusive else "("
            return f"{self.name}={value}: out of bounds {bracket}{self.low:g}, {self.high:g}]"
        return None


HOT_KEYS: dict[str, HotKey] = {
    k.name: k
    for k in (
        HotKey("lr", 0.0, 1.0, False, doc="base lr of Adam-atan2; the schedule continues from it"),
        HotKey("puzzle_emb_lr", 0.0, 1.0, False, doc="base lr of the puzzle-embedding SignSGD"),
        HotKey("weight_decay", 0.0, 10.0, True, doc="decoupled weight decay (Adam-atan2)"),
        HotKey("puzzle_emb_weight_decay", 0.0, 10.0, True, doc="weight decay (SignSGD)"),
        HotKey("grad_clip_norm", 0.0, 1e6, False, nullable=True, doc="null turns clipping off"),
        HotKey("arch.halt_exploration_prob", 0.0, 1.0, True, doc="ACT exploration probability"),
    )
}


def parse_override(text: Any) -> tuple[str, float | None]:
    """`"lr=5e-05"` -> ("lr", 5e-05); raise ValueError with the reason (not hot, bad value)."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"override {text!r}: expected 'key=value'")
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if key not in HOT_KEYS:
        raise ValueError(
            f"'{key}' is not a hot key (a restart is needed); hot keys: {', '.join(HOT_KEYS)}"
        )
    if raw.lower() in ("null", "none", "~"):
        value = None
    else:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"override {text!r}: value {raw!r} is not a number") from None
    problem = HOT_KEYS[key].check(value)
    if problem:
        raise ValueError(problem)
    return key, value


def is_hot(overrides: list[str] | tuple[str, ...]) -> bool:
    """True when every override is a hot key with an allowed value."""
    try:
        for o in overrides:
            parse_override(o)
    except ValueError:
        return False
    return bool(overrides)


def write_request(
    run_dir: str | os.PathLike[str],
    request_id: str,
    overrides: list[str],
    finding_id: str | None = None,
) -> Path:
    """Atomically drop a request into the run's control channel."""
    return _drop(run_dir, request_id, overrides=list(overrides), finding_id=finding_id)


def write_stop_request(
    run_dir: str | os.PathLike[str], request_id: str, finding_id: str | None = None
) -> Path:
    """Ask the trainer to stop at its next step boundary (it saves a checkpoint and exits 0)."""
    return _drop(run_dir, request_id, action="stop", finding_id=finding_id)


def _drop(run_dir: str | os.PathLike[str], request_id: str, **fields: Any) -> Path:
    d = Path(run_dir) / CONTROL_DIR / REQUESTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{request_id}.json"
    atomic_write_json(path, {"id": request_id, **fields, "requested_at": time.time()})
    return path


def read_ack(run_dir: str | os.PathLike[str], request_id: str) -> dict[str, Any] | None:
    """The trainer's acknowledgement of a request, or None while there is none."""
    ack = read_json(Path(run_dir) / CONTROL_DIR / ACKS_DIR / f"{request_id}.json")
    return ack if isinstance(ack, dict) else None
