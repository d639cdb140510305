"""The CLI's standard streams through the masking gate, and writing a report (no Typer, no Rich:
the Typer-free ``scan image`` lane of :mod:`stockade.cli.scan_fast` uses them too)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from stockade.model.errors import StockadeError
from stockade.model.redact import redact_text


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
