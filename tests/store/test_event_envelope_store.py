"""The envelope in the store: new columns, idempotent ingestion, pages by (at, id), the core_0002
backfill of events stored before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store, open_store
from stockade.store.db import _alembic_config
from stockade.store.records import (
    EventFilter,
    event_counts,
    events_page,
    events_stored_since,
    list_events,
    record_events,
    record_new_events,
)


def _ev(i: int, **kw) -> Event:
    base = datetime(2024, 5, 1, tzinfo=UTC)
    kw.setdefault("kind", "dlp.sensitive_in_clear" if i % 2 else "firewall.violation")
    return Event(message=f"e{i}", at=base + timedelta(seconds=i // 3), **kw)


def test_new_fields_are_stored_and_read_back(any_store: Store) -> None:
    e = Event(
        kind="firewall.block",
        message="blocked",
        severity=Severity.HIGH,
        resource=ResourceRef(kind="pod", name="a", namespace="shop"),
        action="block",
        mode="protect",
        node="n1",
        rule="r1",
        count=7,
    )
    record_events(any_store, [e])
    (back,) = list_events(any_store)
    assert back == e


def test_record_new_events_is_idempotent(any_store: Store) -> None:
    batch = [_ev(i) for i in range(10)]
    assert sorted(record_new_events(any_store, batch)) == sorted(e.id for e in batch)
    assert record_new_events(any_store, batch + batch[:3]) == []
    extra = _ev(11)
    assert record_new_events(any_store, [*batch, extra, extra]) == [extra.id]
    assert len(list_events(any_store)) == 11


def test_pages_are_stable_under_inserts(any_store: Store) -> None:
    stored = [_ev(i) for i in range(25)]
    record_events(any_store, stored)
    seen: list[str] = []
    page, cursor = events_page(any_store, EventFilter(), limit=10)
    seen += [e.id for e in page]
    # newer events arrive between two pages: they do not shift the next page
    record_events(any_store, [_ev(100 + i) for i in range(5)])
    while cursor is not None:
        page, cursor = events_page(any_store, EventFilter(), limit=10, before=cursor)
        seen += [e.id for e in page]
    expected = sorted(stored, key=lambda e: (e.at, e.id), reverse=True)
    assert seen == [e.id for e in expected]


def test_filters(any_store: Store) -> None:
    record_events(
        any_store,
        [
            _ev(
                1, severity=Severity.LOW, resource=ResourceRef(kind="pod", name="a", namespace="x")
            ),
            _ev(
                2, severity=Severity.HIGH, resource=ResourceRef(kind="pod", name="b", namespace="y")
            ),
            _ev(3, severity=Severity.CRITICAL, kind="dlp_x.y"),
        ],
    )

    def ids(**kw) -> list[str]:
        page, _ = events_page(any_store, EventFilter(**kw), limit=100)
        return [e.message for e in page]

    assert ids(category="dlp") == ["e1"]
    assert ids(kind="dlp.*") == ["e1"]  # '_' in a glob is not a LIKE wildcard
    assert ids(kind="dlp_x.*") == ["e3"]
    assert ids(min_level=Severity.HIGH) == ["e3", "e2"]
    assert ids(namespace="y") == ["e2"]
    assert ids(since=datetime(2024, 5, 1, 0, 0, 1, tzinfo=UTC)) == ["e3"]
    assert sorted(ids(until=datetime(2024, 5, 1, 0, 0, 1, tzinfo=UTC))) == ["e1", "e2"]
    assert sorted(event_counts(any_store)) == [("dlp", 2, 1), ("dlp_x", 5, 1), ("firewall", 4, 1)]
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert len(events_stored_since(any_store, (since, ""))) == 3


def test_core_0002_fills_in_events_stored_before_it(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "core_0001")
        conn.execute(
            text(
                "INSERT INTO events (id, kind, at, severity, source, message, resource) VALUES "
                "('a', 'tls.weak_version', '2024-01-01 00:00:00', 'high', 's', 'm', "
                '\'{"kind": "pod", "name": "p", "namespace": "shop"}\')'
            )
        )
    engine.dispose()
    store = open_store(url)
    with store.connect() as conn:
        row = conn.execute(
            text("SELECT category, level, namespace, count, stored_at FROM events")
        ).one()
    assert tuple(row[:4]) == ("tls", 4, "shop", 1) and row[4] is not None
    page, _ = events_page(store, EventFilter(category="tls", namespace="shop"), limit=5)
    assert [e.id for e in page] == ["a"] and page[0].count == 1
