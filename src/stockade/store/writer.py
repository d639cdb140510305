"""Writing events from a hot path: a queue drained in batches by one thread.

Servers and enforcers call ``put`` (never blocks, never wakes a thread: one append; a full queue
counts the event in ``dropped`` and the writer logs how many it dropped) and the writer thread
wakes every ``interval`` seconds to store what came in, in batches of up to 500 events, so no
request or packet waits on the database, and a busy server does not hand the interpreter lock to
the writer for every event it emits.
The sink (``record_events``) masks and cleans every string first; when a batch still fails, it is
stored in halves, down to single events, so only the event the database refuses is lost (counted in
``lost`` and logged, masked).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from stockade.model import Event
from stockade.model.redact import redact_text

log = logging.getLogger("stockade.store")


class EventWriter:
    """Queue events and write them in batches from one thread (started by ``start``)."""

    BATCH = 500
    STOP_TIMEOUT = 10.0  # seconds ``stop`` waits for the queue to be stored

    def __init__(
        self,
        sink: Callable[[list[Event]], Any] | None,
        *,
        max_queued: int = 100_000,
        interval: float = 0.05,
        closing: Callable[[], Any] | None = None,
    ) -> None:
        self._sink = sink
        self._closing = closing  # called by ``stop`` once the sink has had the last batch
        self._queue: deque[Event] = deque()
        self._max_queued = max_queued
        self._interval = interval  # seconds between two drains of the queue
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # the queue was full
        self.lost = 0  # the database refused them
        self._dropped_logged = 0

    def start(self) -> None:
        if self._sink is not None and self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()

    def put(self, event: Event) -> None:
        if self._sink is None:
            return
        if len(self._queue) >= self._max_queued:
            self.dropped += 1
            return
        self._queue.append(event)  # atomic; the writer picks it up at its next drain

    def stop(self) -> None:
        """Store what is queued, stop the thread, then call ``closing`` (the sink's own end: a
        server stops the child process that stores its events before its own process ends)."""
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=self.STOP_TIMEOUT)
            if self._thread.is_alive():  # the process may end before they are
                log.error("event writer stopping with %d events not stored yet", len(self._queue))
            self._thread = None
        if self._closing is not None:
            self._closing()

    def write(self, batch: list[Event]) -> None:
        """Store ``batch`` now, in the calling thread, as the writer thread stores its batches
        (another process's writer hands its batches to :mod:`stockade.store.writer_process`)."""
        if self._sink is not None:
            self._store(batch)

    def _run(self) -> None:
        while True:
            stopping = self._stopping.wait(self._interval)
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        while self._queue:
            batch: list[Event] = []
            while self._queue and len(batch) < self.BATCH:
                batch.append(self._queue.popleft())
            self._store(batch)
        if self.dropped > self._dropped_logged:
            log.error(
                "event queue full (%d events): dropped %d events (%d in all)",
                self._max_queued,
                self.dropped - self._dropped_logged,
                self.dropped,
            )
            self._dropped_logged = self.dropped

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
