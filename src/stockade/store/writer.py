"""Writing events from a hot path: a queue drained in batches by one thread.

Servers and enforcers call ``put`` (never blocks; counts drops when the queue is full) and the
writer thread stores batches of up to 500 events, so no request or packet waits on the database.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from stockade.model import Event

log = logging.getLogger("stockade.store")


class EventWriter:
    """Queue events and write them in batches from one thread (started by ``start``)."""

    def __init__(self, sink: Callable[[list[Event]], Any] | None) -> None:
        self._sink = sink
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=100_000)
        self._thread: threading.Thread | None = None
        self.dropped = 0

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
                try:
                    self._sink(batch)
                except Exception:
                    log.exception("could not store %d events", len(batch))
