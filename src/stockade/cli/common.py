"""Shared pieces of the CLI: consoles, the --db option, output files, exit codes, progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stockade.cli.streams import (  # noqa: F401 (used from here)
    RedactingStream,
    emit,
    guard_standard_streams,
    write_masked,
)
from stockade.model.errors import StockadeError  # noqa: F401

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


console = Console()  # writes to sys.stdout as it is at print time, so through the gate
err_console = Console(stderr=True)


def print_error(exc: BaseException) -> None:
    """The one-line ``stockade: error: ...`` for a StockadeError, masked, never wrapped."""
    from stockade.model.redact import redact_text

    err_console.print(
        f"stockade: error: {redact_text(str(exc))}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="STOCKADE_DB",
        help="Database URL (sqlite:///path or postgresql://user@host/db). "
        "Default: ~/.local/share/stockade/stockade.db",
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
]


StoreOption = Annotated[
    bool,
    typer.Option(
        "--store/--no-store",
        help="Record the results in the database (the default); --no-store only prints them.",
    ),
]


def open_db(url: str | None):
    from stockade.store import open_store

    return open_store(url)


class RichObserver:
    """Progress bars on stderr, shown only on a terminal."""

    def __init__(self) -> None:
        # imported here: most commands (and the sensor's start-up) show no progress bar
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )

    def __enter__(self) -> RichObserver:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def task(self, description: str, total: int | None = None) -> object:
        return self._progress.add_task(description, total=total)

    def advance(self, handle: object, amount: int = 1) -> None:
        from rich.progress import TaskID

        if isinstance(handle, int):
            self._progress.advance(TaskID(handle), amount)

    def finish(self, handle: object) -> None:
        from rich.progress import TaskID

        if isinstance(handle, int):
            self._progress.remove_task(TaskID(handle))
