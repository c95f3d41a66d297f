"""Source adapters for W&B: a local run directory (offline, from its .wandb log) and an online
run (``entity/project/run_id`` through ``wandb.Api``; needs the network and a W&B login)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError
from hrm_doctor.interop.importer import Batch, Columns
from hrm_doctor.interop.wandb_log import (
    VERIFIED_WANDB_VERSIONS,
    WandbLogError,
    decode_records,
    find_log_file,
    read_records,
)

# wandb releases whose logs (and, online, whose API) this adapter was verified with.
SUPPORTED_WANDB = VERIFIED_WANDB_VERSIONS
RUN_DIR_RE = re.compile(r"^(offline-run|run)-\d{8}_\d{6}-(?P<id>[a-z0-9]+)$")
ONLINE_PATH_RE = re.compile(r"^[\w.-]+/[\w.-]+/[\w-]+$")


def looks_like_wandb_run(src: Path) -> bool:
    """A W&B run directory, its latest-run link, or one of those not created yet."""
    if src.is_dir() and find_log_file(src) is not None:
        return True
    return src.name == "latest-run" or bool(RUN_DIR_RE.match(src.name))


def _require_wandb(src: Path | str) -> str:
    from importlib import metadata

    try:  # the version only: importing wandb takes a second, the fast path never needs it
        version = metadata.version("wandb")
    except metadata.PackageNotFoundError:
        raise UserError(f"{src}: reading W&B runs needs wandb: pip install wandb") from None
    _warn_unverified(version, f"wandb {version} is installed")
    return version


def _warn_unverified(version: str, what: str) -> None:
    """A warning when `version` of wandb is not one the reader was verified with."""
    if not str(version).startswith(tuple(v + "." for v in SUPPORTED_WANDB)):
        import warnings

        warnings.warn(
            f"{what}; hrm-doctor's W&B reader was verified with wandb "
            f"{', '.join(SUPPORTED_WANDB)}.x",
            stacklevel=3,
        )


class WandbRunSource:
    """Read a local run directory (``wandb/run-*``, ``wandb/offline-run-*``, ``latest-run``).

    `live`: the run may not exist yet, or be written now; a missing log is then "nothing yet".
    """

    kind = "wandb"

    def __init__(self, src: str | Path, *, live: bool = False) -> None:
        self.src = Path(src)
        self.live = live  # reading a log needs no wandb installed: hrm-doctor decodes it
        self.log_file = self._locate()
        if self.log_file is None and not live:
            if not self.src.exists():
                raise UserError(f"{self.src}: no such W&B run directory")
            raise UserError(
                f"{self.src}: not a W&B run directory (no run-*.wandb file in it)"
                if self.src.is_dir()
                else f"{self.src}: not a W&B run directory or .wandb file"
            )
        self.identity = str(self.log_file or self.src.absolute())

    def _locate(self) -> Path | None:
        src = self.src.resolve() if self.src.exists() else self.src
        found = find_log_file(src)
        return found.absolute() if found is not None else None

    def read_new(self, cursor: dict[str, Any], *, final: bool) -> Batch:
        if self.log_file is None:
            self.log_file = self._locate()
            if self.log_file is None:
                return Batch(cursor=cursor)
            self.identity = str(self.log_file)
        offset = int(cursor.get("offset", 0))
        max_bytes = 16 << 20
        while True:
            try:
                chunk = read_records(self.log_file, offset, max_bytes=max_bytes)
            except FileNotFoundError:
                raise UserError(f"{self.log_file}: the W&B log disappeared") from None
            except WandbLogError:
                if self.live and offset == 0 and self.log_file.stat().st_size < 7:
                    return Batch(cursor=cursor)  # the header is not written yet
                raise
            if chunk.records or chunk.at_eof:
                break
            max_bytes *= 4  # one record larger than the read size: read more
        batch = Batch(cursor={"offset": chunk.end_offset}, more=not chunk.at_eof)
        batch.partial_tail = chunk.partial_tail
        columns, slow, summary = _decode_fast(chunk.records)
        if summary:
            batch.summary = {**(cursor.get("summary") or {}), **summary}
        slow_rows: list[tuple[int, int | None, dict[str, float]]] = []
        for index in slow:
            for kind, value in decode_records([chunk.records[index]]):
                self._apply_event(batch, cursor, kind, value, index, slow_rows)
        batch.columns = _with_rows(columns, slow_rows)
        if batch.summary is not None:
            batch.cursor["summary"] = batch.summary
        elif "summary" in cursor:
            batch.cursor["summary"] = cursor["summary"]
        return batch

    @staticmethod
    def _apply_event(
        batch: Batch, cursor: dict[str, Any], kind: str, value: Any, index: int, rows: list
    ) -> None:
        """One decoded record of the protobuf path into the batch."""
        if kind == "history":
            rows.append((index, value.step, value.values))
        elif kind == "config":
            batch.config = {**(batch.config or {}), **value}
        elif kind == "run":
            batch.config = {**value.config, **(batch.config or {})}
            batch.meta.update(
                wandb_run_id=value.run_id,
                wandb_project=value.project,
                wandb_entity=value.entity,
            )
        elif kind == "summary":
            batch.summary = {**(cursor.get("summary") or {}), **(batch.summary or {}), **value}
        elif kind == "header":
            batch.meta["wandb_version"] = value
            _warn_unverified(value, f"this W&B log was written by wandb {value}")
        elif kind == "exit":
            batch.exit_code = value


def _decode_fast(records: list[bytes]) -> tuple[Any, list[int], dict[str, Any] | None]:
    """History by column and the merged summary (wandb_fast); the indices of the records left
    to the protobuf path, in order."""
    import numpy as np

    from hrm_doctor.interop import wandb_fast as fast

    joined = fast.Joined.of(records)
    kinds = joined.kinds()
    block = fast.decode_history(joined, np.nonzero(kinds == fast.HISTORY)[0])
    summary_idx = np.nonzero(kinds == fast.SUMMARY)[0]
    summary = fast.merged_summary(joined, summary_idx)
    slow = set(np.nonzero(kinds == 0)[0].tolist()) | set(block.fallback)
    if summary is None:  # keys removed: applied one record at a time
        slow |= set(summary_idx.tolist())
    return block, sorted(slow), summary


def _with_rows(block: Any, rows: list[tuple[int, int | None, dict[str, float]]]) -> Columns:
    """The fast path's columns with the protobuf path's history rows, in log order."""
    import numpy as np

    if not rows:
        return Columns(block.steps, block.names, block.values, block.present)
    names = list(block.names)
    for _, _, values in rows:
        names += [k for k in values if k not in names]
    col = {n: j for j, n in enumerate(names)}
    n_rows = len(block.steps) + len(rows)
    table = np.full((n_rows, len(names)), np.nan)
    present = np.zeros((n_rows, len(names)), dtype=bool)
    table[: len(block.steps), : len(block.names)] = block.values
    present[: len(block.steps), : len(block.names)] = block.present
    order = list(block.records)
    steps = list(block.steps)
    for r, (index, step, values) in enumerate(rows, start=len(block.steps)):
        order.append(index)
        steps.append(-1 if step is None else step)
        for k, v in values.items():
            table[r, col[k]] = v
            present[r, col[k]] = True
    perm = np.argsort(np.asarray(order), kind="stable")
    return Columns(np.asarray(steps, dtype=np.int64)[perm], names, table[perm], present[perm])


class WandbOnlineSource:
    """Read ``entity/project/run_id`` through ``wandb.Api`` (history via ``scan_history``).

    Not exercised by the tests (no network here); read once, in full (no live follow).
    """

    kind = "wandb"

    def __init__(self, path: str) -> None:
        if not ONLINE_PATH_RE.match(path):
            raise UserError(f"{path}: not a local W&B run directory nor entity/project/run_id")
        _require_wandb(path)
        self.path = path
        self.identity = f"wandb://{path}"

    def read_new(self, cursor: dict[str, Any], *, final: bool) -> Batch:
        if cursor.get("done"):
            return Batch(cursor=cursor)
        import wandb

        try:
            run = wandb.Api(timeout=30).run(self.path)
            config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
            summary = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
            rows: list[tuple[int | None, dict[str, float]]] = []
            for item in run.scan_history():
                step = item.get("_step")
                values = {
                    k: float(v)
                    for k, v in item.items()
                    if not k.startswith("_") and isinstance(v, (int, float)) and v is not None
                }
                rows.append((int(step) if step is not None else None, values))
        except Exception as exc:  # network, auth, missing run: all user-side problems
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"wandb://{self.path}: cannot read the run ({first})") from None
        rows.sort(key=lambda r: -1 if r[0] is None else r[0])
        meta = {"wandb_run_id": run.id, "wandb_project": run.project, "wandb_entity": run.entity}
        return Batch(rows=rows, config=config, summary=summary, meta=meta, cursor={"done": True})
