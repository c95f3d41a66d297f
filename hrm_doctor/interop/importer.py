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

from hrm_doctor._io import atomic_write_json, read_json
from hrm_doctor.errors import UserError
from hrm_doctor.interop.mapping import META_NAMES, NameMap

CURSOR_FILE = "import.json"


@dataclass
class Batch:
    """What a source adapter found since its cursor."""

    rows: list[tuple[int | None, dict[str, float]]] = field(default_factory=list)
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
        if writer is None and (batch.rows or batch.config or batch.meta or changed):
            writer = self._open_writer(batch.meta)
        elif writer is not None and batch.config:
            atomic_write_json(self.run_dir / "config.json", self._config)
        last = self.last_step
        written = dropped = 0
        meta_fields: dict[str, Any] = {}
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

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close(status="failed" if self.exit_code else "finished")
            self._writer = None
