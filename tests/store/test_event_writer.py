"""The event writer on real SQLite and PostgreSQL: one bad string never costs a batch.

Issue 11, Medium 7: a lone surrogate (SQLite cannot encode it) or a NUL (PostgreSQL text refuses
it) in one event dropped the whole batch of up to 500 events.
"""

from __future__ import annotations

import logging

import pytest

from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store
from stockade.store.records import list_events, record_events
from stockade.store.writer import EventWriter

CARD = "4111111111111111"


def _write(store: Store, events: list[Event]) -> EventWriter:
    writer = EventWriter(lambda batch: record_events(store, batch))
    writer.start()
    for e in events:
        writer.put(e)
    writer.stop()
    return writer


def _ok(i: int) -> Event:
    return Event(kind="admission.decision", message=f"allowed pod {i}", severity=Severity.LOW)


def test_unstorable_characters_are_replaced_not_fatal(any_store: Store) -> None:
    hostile = [
        Event(kind="admission.decision", message="pod \ud800 name", data={"k\x00": "v\udfff"}),
        Event(
            kind="admission.decision",
            message="nul \x00 in the message",
            resource=ResourceRef(kind="pod", name="a\x00b", namespace="ns\ud83d"),
        ),
    ]
    events = [_ok(i) for i in range(100)] + hostile + [_ok(i) for i in range(100, 200)]
    writer = _write(any_store, events)
    stored = {e.id: e for e in list_events(any_store, limit=1000)}
    assert len(stored) == 202
    assert (writer.lost, writer.dropped) == (0, 0)
    assert stored[hostile[0].id].message == "pod \ufffd name"
    assert stored[hostile[0].id].data == {"k\ufffd": "v\ufffd"}
    assert stored[hostile[1].id].resource == ResourceRef(
        kind="pod", name="a\ufffdb", namespace="ns\ufffd"
    )


def test_a_refused_event_is_the_only_one_lost(
    any_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    first = _ok(0)
    # the same id twice: the database refuses the second whatever its text
    twin = Event(id=first.id, kind="dlp.sensitive_in_clear", message=f"card {CARD}")
    events = [first] + [_ok(i) for i in range(1, 250)] + [twin] + [_ok(i) for i in range(250, 400)]
    with caplog.at_level(logging.ERROR, logger="stockade.store"):
        writer = _write(any_store, events)
    stored = list_events(any_store, limit=1000)
    assert len(stored) == 400 and {e.id for e in stored} == {e.id for e in events}
    assert writer.lost == 1
    (line,) = [r.getMessage() for r in caplog.records if r.name == "stockade.store"]
    assert "could not store 1 of" in line and "dlp.sensitive_in_clear" in line
    assert CARD not in line and "\n" not in line


def test_a_full_queue_drops_loudly_and_stores_the_rest(
    any_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: ``put`` only appends (no thread is woken per event); what a full queue cannot
    take is counted and logged by the writer, never dropped silently."""
    writer = EventWriter(lambda batch: record_events(any_store, batch), max_queued=5)
    events = [_ok(i) for i in range(8)]
    for e in events:  # before start: the queue fills up
        writer.put(e)
    with caplog.at_level(logging.ERROR, logger="stockade.store"):
        writer.start()
        writer.stop()
    assert writer.dropped == 3 and writer.lost == 0
    assert {e.id for e in list_events(any_store, limit=100)} == {e.id for e in events[:5]}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "stockade.store"]
    assert "dropped 3 events" in line


def test_stopping_before_the_queue_is_stored_says_how_many_are_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 19: a sink slower than the stop timeout (a database far behind) left events unstored
    at shutdown without a word."""
    import threading

    release = threading.Event()
    writer = EventWriter(lambda batch: release.wait(5), interval=0.01)
    writer.STOP_TIMEOUT = 0.2
    for i in range(600):  # one batch of 500 blocks in the sink; 100 wait behind it
        writer.put(_ok(i))
    writer.start()
    with caplog.at_level(logging.ERROR, logger="stockade.store"):
        writer.stop()
    release.set()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "stockade.store"]
    assert line == "event writer stopping with 100 events not stored yet"


def test_stop_closes_the_sink_after_its_last_batch(sqlite_store: Store) -> None:
    """Issue 19: the webhook's event store process must be closed inside uvicorn's shutdown
    (uvicorn ends the worker with the SIGTERM it caught right after): ``stop`` calls
    ``closing`` once the sink has had every batch."""
    seen: list[str] = []

    def sink(batch: list[Event]) -> int:
        seen.append(f"batch {len(batch)}")
        return record_events(sqlite_store, batch)

    writer = EventWriter(sink, closing=lambda: seen.append("closed"))
    for i in range(700):
        writer.put(_ok(i))
    writer.start()
    writer.stop()
    assert seen == ["batch 500", "batch 200", "closed"]
    assert len(list_events(sqlite_store, limit=1000)) == 700
