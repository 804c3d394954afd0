"""Progress reporting that stage functions accept and the CLI renders with rich.

Stage functions take a :class:`Reporter`; the default does nothing, so library calls
(tests, Airflow tasks) stay quiet and the CLI alone decides how progress looks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Reporter", "NullReporter", "RichReporter"]

Advance = Callable[[int], None]


class Reporter:
    """Interface: ``with reporter.task("ingest", total=n) as advance: advance(1)``."""

    @contextmanager
    def task(self, description: str, *, total: int | None) -> Iterator[Advance]:
        yield lambda n=1: None

    def log(self, message: str) -> None:
        print(message, flush=True)


class NullReporter(Reporter):
    """Prints log lines only (DVC and Airflow capture them)."""


class RichReporter(Reporter):
    """Rich progress bars on a terminal; plain log lines elsewhere."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def task(self, description: str, *, total: int | None) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if not self.console.is_terminal:
            self.log(f"{description} ({total if total is not None else '?'} items)")
            yield lambda n=1: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            tid = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(tid, n)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)
