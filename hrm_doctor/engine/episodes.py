"""Persistence, keep-firing and repeat: from a per-sample condition to findings made once.

Prometheus semantics: a condition must hold for `for` steps before it fires (pending before
that); once fired, the episode stays open while the condition comes back within
`keep_firing_for` steps of the last time it held, so a flapping condition makes one finding,
not one per flap (ElastAlert's re-alert limit). With `repeat`, a rule fires only when the
condition has started `count` separate times within `within` steps (repeated loss spikes).
The work is per run of consecutive true samples, so a healthy series costs almost nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SeriesState:
    """Persistence state of one series (one rule, metric and rank)."""

    onset: int | None = None  # first step of the current run of true samples
    confirmed: bool = False  # that run has lasted `for` steps
    last_true: int | None = None


@dataclass
class RunEvent:
    """A run of true samples of one series, within one update."""

    act_step: int  # when it acts: its confirming step, else its first true step here
    rank: int
    metric: str
    onset: int
    first_true: int
    last_true: int
    confirm_step: int | None
    confirm_index: int | None
    payload: Any = None  # what the engine needs to build the finding (detector, signal)


@dataclass
class Episode:
    finding_id: str
    first_step: int
    last_step: int


@dataclass
class EpisodeBook:
    """Open episodes and pending repeat onsets of one rule, by episode key."""

    open: dict[tuple, Episode] = field(default_factory=dict)
    onsets: dict[tuple, deque] = field(default_factory=dict)
    last_true: dict[tuple, int] = field(default_factory=dict)  # repeat: end of the last event


def scan_runs(
    state: SeriesState, steps: np.ndarray, cond: np.ndarray, for_steps: int, rank: int, metric: str
) -> list[RunEvent]:
    """Split one update into runs of true samples, advancing the persistence state."""
    n = len(cond)
    if n == 0:
        return []
    if not cond.any():
        state.onset, state.confirmed = None, False
        return []
    c = cond.astype(np.int8)
    edges = np.diff(np.concatenate([[0], c, [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0] - 1
    events = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        continuing = a == 0 and state.onset is not None
        if not continuing:
            state.onset, state.confirmed = int(steps[a]), False
        onset = state.onset
        confirm_step = confirm_index = None
        if not state.confirmed:
            target = onset + for_steps - 1
            j = a + int(np.searchsorted(steps[a : b + 1], target, side="left"))
            if j <= b:
                confirm_index, confirm_step = j, int(steps[j])
                state.confirmed = True
        first_true, last_true = int(steps[a]), int(steps[b])
        act = confirm_step if confirm_step is not None else first_true
        events.append(
            RunEvent(act, rank, metric, onset, first_true, last_true, confirm_step, confirm_index)
        )
        state.last_true = last_true
        if b < n - 1:
            state.onset, state.confirmed = None, False
    return events


@dataclass
class Decision:
    """A run that opens a new episode: the engine makes a finding from it."""

    event: RunEvent
    key: tuple
    first_step: int
    onsets: tuple[int, ...]


def resolve(
    book: EpisodeBook,
    events: list[RunEvent],
    key_of,
    rule_id: str,
    keep_firing_for: int,
    repeat: tuple[int, int, int] | None,
) -> list[Decision]:
    """Merge runs into open episodes or open new ones, in step order; return the new ones."""
    out: list[Decision] = []
    events.sort(key=lambda e: (e.act_step, e.rank, e.metric))
    for ev in events:
        key = key_of(ev)
        ep = book.open.get(key)
        prev_true = book.last_true.get(key)
        if repeat is not None:
            book.last_true[key] = max(
                ev.last_true, prev_true if prev_true is not None else ev.last_true
            )
        if ep is not None and ev.first_true - ep.last_step <= keep_firing_for:
            ep.last_step = max(ep.last_step, ev.last_true)
            continue
        if ev.confirm_step is None:
            continue
        onsets: tuple[int, ...] = (ev.onset,)
        first = ev.onset
        if repeat is not None:
            count, within, gap = repeat
            dq = book.onsets.setdefault(key, deque())
            if dq and prev_true is not None and ev.onset - prev_true < gap:
                continue  # the same event flickering around the threshold
            dq.append(ev.onset)
            while dq and dq[0] < ev.confirm_step - within:
                dq.popleft()
            if len(dq) < count:
                continue
            onsets = tuple(dq)
            first = dq[0]
            dq.clear()
        book.open[key] = Episode(f"{rule_id}@{first}", first, max(ev.last_true, ev.confirm_step))
        out.append(Decision(ev, key, first, onsets))
    return out
