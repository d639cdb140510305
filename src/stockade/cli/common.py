"""Shared pieces of the CLI: consoles, the --db option, output files, exit codes, progress."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from stockade.model.errors import StockadeError
from stockade.model.redact import redact_text

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


class RedactingStream:
    """A text stream whose every write passes the masking gate (``stockade.model.redact``): the
    CLI's stdout and stderr, so a report, a table, a usage error quoting an argument or a progress
    line cannot print a card number or SSN in full."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, flush, buffer, ...
        return getattr(self._stream, name)


def write_masked(text: str) -> None:
    """Write ``text`` whose every string already passed the gate one by one (a JSON line built
    from ``to_dict()``) to stdout without a second pass over the whole line."""
    out = sys.stdout
    (out._stream if isinstance(out, RedactingStream) else out).write(text)


def guard_standard_streams() -> None:
    """Route sys.stdout and sys.stderr through the masking gate (once; the CLI's entry point)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]


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


def emit(text: str, output: Path | None) -> None:
    """Write a machine-readable report to a file or stdout (never through Rich markup)."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    text = redact_text(text)  # files get what stdout gets: nothing unmasked
    try:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise StockadeError(f"cannot write {output}: {exc.strerror}") from exc


class RichObserver:
    """Progress bars on stderr, shown only on a terminal."""

    def __init__(self) -> None:
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
        if isinstance(handle, int):
            self._progress.advance(TaskID(handle), amount)

    def finish(self, handle: object) -> None:
        if isinstance(handle, int):
            self._progress.remove_task(TaskID(handle))
