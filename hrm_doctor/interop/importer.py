"""Convert a foreign run (W&B, TensorBoard) into a run directory, incrementally, with a cursor.

A source adapter reads what is new since its cursor and returns a `Batch`; the `Importer` maps
the names, logs the rows with a `RunWriter`, flushes, and only then saves the cursor
(``RUN/import.json``), so a crash re-imports at most the last batch (the writer's sessions
supersede the re-logged steps: readers see each step once). The same importer serves the
one-shot `hrm-doctor import` and the live follow of `hrm-doctor watch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hrm_doctor._io import atomic_write_json, read_json
from hrm_doctor.errors import UserError
from hrm_doctor.interop.mapping import META_NAMES, NameMap

CURSOR_FILE = "import.json"


@dataclass
class Columns:
    """Rows by column (a fast adapter's output): `values[i, j]` is `names[j]` at row i where
    `present[i, j]`; `steps[i]` is -1 where the source gave no step."""

    steps: np.ndarray
    names: list[str]
    values: np.ndarray
    present: np.ndarray


@dataclass
class Batch:
    """What a source adapter found since its cursor: `rows` one by one, or `columns`."""

    rows: list[tuple[int | None, dict[str, float]]] = field(default_factory=list)
    columns: Columns | None = None
    config: dict[str, Any] | None = None  # config keys set or changed
    summary: dict[str, Any] | None = None  # the source's run summary (W&B), latest values
    meta: dict[str, Any] = field(default_factory=dict)  # facts about the source run
    cursor: dict[str, Any] = field(default_factory=dict)  # where the next read starts
    more: bool = False  # the adapter stopped early (a size limit): call again now
    exit_code: int | None = None  # the source run ended (W&B exit record)
    partial_tail: bool = False  # the source ends in an incomplete record


class SourceAdapter(Protocol):
    kind: str
    identity: str  # the file or directory converted (guards against mixing two sources)

    def read_new(self, cursor: dict[str, Any], *, final: bool) -> Batch: ...


class Importer:
    """Convert what is new in `adapter`'s source into `run_dir`. `update()` may be called again
    and again (live follow); `close()` ends the writer session."""

    def __init__(
        self, adapter: SourceAdapter, run_dir: str | Path, name_map: NameMap | None = None
    ) -> None:
        self.adapter = adapter
        self.run_dir = Path(run_dir)
        self.name_map = name_map or NameMap()
        self.state: dict[str, Any] = read_json(self.run_dir / CURSOR_FILE, default=None) or {}
        if self.state and self.state.get("source") != adapter.identity:
            raise UserError(
                f"{self.run_dir / CURSOR_FILE}: this run was imported from "
                f"{self.state.get('source')!r}, not {adapter.identity!r}: choose another RUN"
            )
        self.state.setdefault("format", adapter.kind)
        self.state.setdefault("source", adapter.identity)
        self.state.setdefault("cursor", {})
        self.state.setdefault("last_step", -1)
        self.state.setdefault("steps_imported", 0)
        self.state.setdefault("rows_dropped", 0)
        self._writer: Any = None
        self._config: dict[str, Any] = dict(read_json(self.run_dir / "config.json", {}) or {})
        self.partial_tail = False
        self.exit_code: int | None = self.state.get("exit_code")

    @property
    def last_step(self) -> int:
        return int(self.state["last_step"])

    def _open_writer(self, meta: dict[str, Any]) -> Any:
        from hrm_doctor.telemetry.writer import RunWriter

        info = {"format": self.adapter.kind, "path": self.adapter.identity, **meta}
        self._writer = RunWriter(
            self.run_dir,
            config=self._config,
            meta={"imported_from": info},
            program=f"hrm-doctor import {self.adapter.kind}",
        )
        return self._writer

    def update(self, *, final: bool = False) -> int:
        """Convert everything new; return the number of steps written. `final`: the source is
        complete (one-shot import), so rows an adapter holds back for more values are written."""
        written = 0
        while True:
            batch = self.adapter.read_new(self.state["cursor"], final=final)
            written += self._apply(batch)
            self.partial_tail = batch.partial_tail
            if not batch.more:
                return written

    def _apply(self, batch: Batch) -> int:
        changed = batch.cursor != self.state["cursor"]
        if batch.config:
            self._config.update(batch.config)
        writer = self._writer
        has_rows = bool(batch.rows) or (batch.columns is not None and len(batch.columns.steps))
        if writer is None and (has_rows or batch.config or batch.meta or changed):
            writer = self._open_writer(batch.meta)
        elif writer is not None and batch.config:
            atomic_write_json(self.run_dir / "config.json", self._config)
        last = self.last_step
        written = dropped = 0
        meta_fields: dict[str, Any] = {}
        if batch.columns is not None:
            last, written, dropped = self._write_columns(writer, batch.columns, meta_fields)
        for step, values in batch.rows:
            step = last + 1 if step is None else step
            if step < last:  # the source went back in time (a restart): W&B refuses it too
                dropped += 1
                continue
            row: dict[str, float] = {}
            for name, value in values.items():
                if name in META_NAMES:
                    meta_fields[name] = int(value) if float(value).is_integer() else value
                    continue
                target = self.name_map(name)
                if target is not None:
                    row[target] = value
            if row:
                writer.log(row, step=step)
                written += step != last
                last = step
        if batch.summary is not None:
            meta_fields["source_summary"] = batch.summary
        if batch.meta:
            meta_fields["imported_from"] = {
                "format": self.adapter.kind,
                "path": self.adapter.identity,
                **batch.meta,
            }
        if writer is not None:
            if meta_fields:
                writer.set_meta(**meta_fields)
            writer.flush()  # the rows are on disk before the cursor that skips them
        if batch.exit_code is not None:
            self.exit_code = batch.exit_code
            self.state["exit_code"] = batch.exit_code
        if changed or written or dropped:
            self.state.update(
                cursor=batch.cursor,
                last_step=last,
                steps_imported=int(self.state["steps_imported"]) + written,
                rows_dropped=int(self.state["rows_dropped"]) + dropped,
            )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / CURSOR_FILE, self.state)
        return written

    def _write_columns(
        self, writer: Any, cols: Columns, meta_fields: dict[str, Any]
    ) -> tuple[int, int, int]:
        """The column path of `_apply`, with the same rules: rows without a step follow the
        previous one, rows going back in time are dropped, meta names go to meta.json."""
        last = self.last_step
        steps = cols.steps.copy()
        for i in np.nonzero(steps < 0)[0]:  # rare: rows the source gave no step
            steps[i] = (steps[i - 1] if i else last) + 1
        targets = [None if n in META_NAMES else self.name_map(n) for n in cols.names]
        for j, name in enumerate(cols.names):
            if name in META_NAMES and cols.present[:, j].any():
                value = float(cols.values[cols.present[:, j], j][-1])
                meta_fields[name] = int(value) if value.is_integer() else value
        wanted = [j for j, t in enumerate(targets) if t is not None]
        monotonic = len(steps) < 2 or bool((np.diff(steps) > 0).all())
        if not monotonic or len({targets[j] for j in wanted}) < len(wanted):
            return self._write_rows_of(writer, cols, steps, targets, last)  # the general rules
        keep = steps >= last
        present, values = cols.present[keep][:, wanted], cols.values[keep][:, wanted]
        dropped = int((~keep).sum())
        has = present.any(axis=1)
        steps, present, values = steps[keep][has], present[has], values[has]
        if not len(steps):
            return last, 0, dropped
        written = int((np.diff(np.concatenate(([last], steps))) != 0).sum())
        names = [targets[j] for j in wanted]
        # Consecutive rows with the same metrics go to the writer as one block.
        pattern = np.unique(np.packbits(present, axis=1), axis=0, return_inverse=True)[1]
        cuts = np.nonzero(np.diff(pattern.ravel()))[0] + 1
        for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(steps)]))):
            mask = present[a]
            block_names = [n for n, m in zip(names, mask, strict=True) if m]
            writer.log_block(block_names, steps[a:b], values[a:b][:, mask])
        return int(steps[-1]), written, dropped

    def _write_rows_of(
        self, writer: Any, cols: Columns, steps: np.ndarray, targets: list, last: int
    ) -> tuple[int, int, int]:
        written = dropped = 0
        for i, step in enumerate(steps.tolist()):
            if step < last:
                dropped += 1
                continue
            row: dict[str, float] = {}
            for j, target in enumerate(targets):
                if target is not None and cols.present[i, j]:
                    row[target] = float(cols.values[i, j])  # a later name wins
            if row:
                writer.log(row, step=step)
                written += step != last
                last = step
        return last, written, dropped

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close(status="failed" if self.exit_code else "finished")
            self._writer = None
