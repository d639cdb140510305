"""Progress reporting from library code without importing any UI.

Library functions take an optional ``Observer``; the CLI passes one backed by Rich progress bars.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def task(self, description: str, total: int | None = None) -> object:
        """Start a task; returns a handle passed back to ``advance`` and ``finish``."""
        ...

    def advance(self, handle: object, amount: int = 1) -> None: ...

    def finish(self, handle: object) -> None: ...


class NullObserver:
    """The default: report nothing."""

    def task(self, description: str, total: int | None = None) -> object:
        return None

    def advance(self, handle: object, amount: int = 1) -> None:
        return None

    def finish(self, handle: object) -> None:
        return None
