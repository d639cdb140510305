"""The live event stream: one poller per controller process fans new events out to subscribers.

The poller follows the store's ``stored_at`` (so it sees events written by any process or replica,
not only this one's ingestion) and is woken at once when this process stores events. It looks back
``OVERLAP`` (2 seconds) on every poll, because a transaction stamped earlier may commit later, and
forgets ids it has sent once they fall out of that window. Each subscriber has a bounded queue; a
subscriber that falls ``QUEUE_SIZE`` events behind is told how many it missed and disconnected
(it resumes from the events API), so a slow client never holds memory or the poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stockade.model import Event
from stockade.store import Store
from stockade.store.records import EventFilter, events_stored_since

log = logging.getLogger("stockade.api")

QUEUE_SIZE = 1000
POLL_SECONDS = 0.5
OVERLAP = timedelta(seconds=2)
BATCH = 1000


@dataclass(eq=False)
class Subscriber:
    filter: EventFilter
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    missed: int = 0

    def offer(self, event: Event) -> None:
        if self.missed:
            return
        if self.filter.matches(event):
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.missed = 1


class Broadcaster:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor = datetime.now(UTC)
        self._sent: dict[str, datetime] = {}  # id -> stored_at, within the overlap window

    def subscribe(self, f: EventFilter) -> Subscriber:
        if not self.subscribers:
            # Nobody was listening: start from now rather than replaying the gap.
            self._cursor = datetime.now(UTC)
            self._sent.clear()
        sub = Subscriber(f)
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def wake(self) -> None:
        """Events were stored in this process: poll now rather than at the next tick."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self.subscribers:
            try:
                await self._poll()
            except Exception as exc:  # the stream must outlive a database hiccup
                log.warning("event stream poll failed: %s", str(exc).splitlines()[0][:200])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _poll(self) -> None:
        position = (self._cursor - OVERLAP, "")
        while True:
            rows = await asyncio.to_thread(events_stored_since, self.store, position, limit=BATCH)
            for stored_at, event in rows:
                position = (stored_at, event.id)
                if event.id in self._sent:
                    continue
                self._sent[event.id] = stored_at
                self._cursor = max(self._cursor, stored_at)
                for sub in list(self.subscribers):
                    sub.offer(event)
            if len(rows) < BATCH:
                break
        horizon = self._cursor - OVERLAP
        self._sent = {i: t for i, t in self._sent.items() if t >= horizon}
