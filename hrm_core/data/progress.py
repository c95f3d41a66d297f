"""Progress reporting for the dataset builders: silent by default, rich bars on the command line.

Builders take a `Progress` and wrap their loops in `progress.track(...)`; the library stays quiet
(tests, the trainer building the smoke data) and the CLI passes `RichProgress`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """Something that can report progress over an iterable of known length."""

    def track(self, items: Iterable[T], total: int, description: str) -> Iterator[T]:
        """Yield `items` unchanged while reporting how many of `total` are done."""
        ...


class NoProgress:
    """Reports nothing."""

    def track(self, items: Iterable[T], total: int, description: str) -> Iterator[T]:
        yield from items


class RichProgress:
    """Rich progress bars on stderr, one per tracked loop; use as a context manager."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _RichBars

        self._bars = _RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def track(self, items: Iterable[T], total: int, description: str) -> Iterator[T]:
        task = self._bars.add_task(description, total=total)
        for item in items:
            yield item
            self._bars.advance(task)


SILENT = NoProgress()
"""The default progress of every builder: report nothing."""
