"""A sensor run's bookkeeping: connection records as they stream by are tallied (events by kind,
the worst severity, the run's observation) and written to the store in batches, so a long capture
keeps no growing list of records. ``on_events`` sees every event as it is made and ``on_record``
every connection record (the CLI sends both to the controller); the store gets the same events
and records, ids included."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stockade.model import Event, Severity
from stockade.network.connection import (
    DEFAULT_POLICY,
    ConnectionRecord,
    Hit,
    dlp_event_kinds,
    event_kinds,
    events_for,
)
from stockade.network.observation import Observation
from stockade.network.tls_policy import TlsPolicy

if TYPE_CHECKING:
    from stockade.store import Store


class Recorder:
    BATCH = 200

    def __init__(
        self,
        store: Store | None,
        *,
        capture: str,
        source: str = "sensor",
        policy: TlsPolicy = DEFAULT_POLICY,
        on_events: Callable[[list[Event]], None] | None = None,
        on_record: Callable[[ConnectionRecord], None] | None = None,
    ) -> None:
        self.store = store
        self.on_events = on_events
        self.on_record = on_record
        self.policy = policy
        self.capture = capture
        self.source = source
        self.connections = 0
        self.kinds: dict[str, int] = {}
        self.worst = Severity.UNKNOWN
        self.stored = (0, 0)  # connections, events
        self.observed = Observation(source, policy.min_version)
        self._pending: list[ConnectionRecord] = []
        self._pending_events: list[Event] = []
        self._pending_data: list[dict[str, Any] | None] = []

    def add(self, rec: ConnectionRecord, data: dict[str, Any] | None = None) -> list[Event]:
        """Tally one record (and queue it for the store, with its ``to_dict()`` when the caller
        made it already); returns its events, built only when the store or ``on_events`` takes
        them (else only counted: an empty list)."""
        self.connections += 1
        self.observed.add(rec)
        if self.store is None and self.on_events is None:
            for kind, severity in event_kinds(rec, self.policy):
                self.kinds[kind] = self.kinds.get(kind, 0) + 1
                self.worst = max(self.worst, severity)
            if self.on_record is not None:
                self.on_record(rec)
            return []
        events = events_for(rec, self.source, self.policy)
        for e in events:
            self.kinds[e.kind] = self.kinds.get(e.kind, 0) + 1
            self.worst = max(self.worst, e.severity)
        if self.on_record is not None:
            self.on_record(rec)
        if self.on_events is not None and events:
            self.on_events(events)
        if self.store is not None:
            self._pending.append(rec)
            self._pending_data.append(data)
            self._pending_events.extend(events)
            if len(self._pending) >= self.BATCH:
                self.flush()
        return events

    def add_plain(
        self, count: int, protocol: str, first: float, last: float, hits: tuple[Hit, ...] = ()
    ) -> None:
        """Tally ``count`` connections of clear ``protocol`` without TLS whose records were not
        built (``run_pcap``'s ``on_lines``: their JSON lines were written in C), with ``hits``
        (the DLP hits of one such connection); only for a recorder that neither stores nor
        hands on records or events."""
        if self.store is not None or self.on_events is not None or self.on_record is not None:
            raise ValueError("a recorder that stores or hands on records needs the records")
        self.connections += count
        self.observed.add_plain(count, protocol, first, last, len(hits))
        for kind, severity in dlp_event_kinds(hits):
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.worst = max(self.worst, severity)

    def flush(self) -> None:
        if self.store is None or not self._pending:
            return
        from stockade.network.store import write  # SQLAlchemy: only a run that stores loads it

        conns, events = write(
            self.store,
            self._pending,
            self.source,
            self.policy,
            events=self._pending_events,
            data=self._pending_data,
        )
        self.stored = (self.stored[0] + conns, self.stored[1] + events)
        self._pending = []
        self._pending_events = []
        self._pending_data = []

    def finish(self) -> None:
        """Write what is left and the run's ``network.observed`` summary (when it saw traffic)."""
        summary = self.observed.event(self.capture) if self.observed.connections else None
        if self.on_events is not None and summary is not None:
            self.on_events([summary])
        if self.store is None:
            return
        from stockade.store.records import record_events

        self.flush()
        if summary is not None:
            self.stored = (self.stored[0], self.stored[1] + record_events(self.store, [summary]))
