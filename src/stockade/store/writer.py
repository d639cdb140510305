"""Writing events from a hot path: a queue drained in batches by one thread.

Servers and enforcers call ``put`` (never blocks; counts drops when the queue is full) and the
writer thread stores batches of up to 500 events, so no request or packet waits on the database.
The sink (``record_events``) masks and cleans every string first; when a batch still fails, it is
stored in halves, down to single events, so only the event the database refuses is lost (counted in
``lost`` and logged, masked).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from stockade.model import Event
from stockade.model.redact import redact_text

log = logging.getLogger("stockade.store")


class EventWriter:
    """Queue events and write them in batches from one thread (started by ``start``)."""

    def __init__(self, sink: Callable[[list[Event]], Any] | None) -> None:
        self._sink = sink
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=100_000)
        self._thread: threading.Thread | None = None
        self.dropped = 0  # the queue was full
        self.lost = 0  # the database refused them

    def start(self) -> None:
        if self._sink is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()

    def put(self, event: Event) -> None:
        if self._sink is None:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        assert self._sink is not None
        done = False
        while not done:
            batch: list[Event] = []
            item = self._queue.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._queue.get(timeout=0.05)
                except queue.Empty:
                    break
            if batch:
                self._store(batch)

    def _store(self, batch: list[Event]) -> None:
        lost: list[tuple[Event, Exception]] = []
        self._store_halves(batch, lost)
        if lost:
            self.lost += len(lost)
            event, exc = lost[0]
            log.error(
                "could not store %d of %d events (first: %s %s: %s)",
                len(lost),
                len(batch),
                event.kind,
                event.id,
                _one_line(exc),
            )

    def _store_halves(self, batch: list[Event], lost: list[tuple[Event, Exception]]) -> None:
        """Store ``batch``; when the database refuses it, store each half the same way, down to
        single events: a few transactions find the event it refuses, and only that one is lost."""
        assert self._sink is not None
        # The writer thread must outlive any error of any database driver, hence the broad catch.
        try:
            self._sink(batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                lost.append((batch[0], exc))
                return
        middle = len(batch) // 2
        self._store_halves(batch[:middle], lost)
        self._store_halves(batch[middle:], lost)


def _one_line(exc: Exception) -> str:
    # Driver messages carry the SQL and its parameters on later lines: keep the first, masked.
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact_text(first)[:300]
