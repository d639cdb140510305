"""Idempotent ingestion in bulk (``record_new_events``): one statement a batch, not one a row (the
cost behind 3,300 events/s on PostgreSQL), still exactly once per id, on SQLite and PostgreSQL
(COPY into the table under a savepoint; at a stored id, COPY into a temporary table, then
INSERT ... ON CONFLICT DO NOTHING RETURNING). And the events
API's pages read by core_0003's (..., at, id) indexes, one range per level value, merged."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Text, cast, event, insert, select

from stockade.model import Event, ResourceRef, Severity
from stockade.store import Store, open_store
from stockade.store.bulk import insert_new_rows
from stockade.store.records import EventFilter, _event_row, events_page, record_new_events
from stockade.store.tables import events
from tests.api.controller import pg_url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    else:  # a schema of its own: other tests reset ``public``
        s = open_store(pg_url("stockade_bulk_ingest_test"))
    yield s
    s.close()


def _event(i: int) -> Event:
    return Event(
        kind="dlp.sensitive_in_clear",
        severity=Severity.HIGH,
        source="sensor",
        message=f"card 4111 1111 1111 1111 seen by {i}\x00",
        resource=ResourceRef(kind="Pod", name=f"web-{i}", namespace="shop", labels=(("a", "b"),)),
        data={"evidence": ["4111-1111-1111-1111"], "port": 443, "id": f"conn-{i}", "n": None},
        at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        id=uuid.uuid4().hex,
        node="node-1",
        action="alert",
        rule="r 536-22-8401",
    )


def _statements(store: Store) -> list[str]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", before)
    return seen


def test_a_batch_is_one_insert_not_one_a_row(store: Store) -> None:
    batch = [_event(i) for i in range(200)]
    record_new_events(store, batch[:1])  # the session's first use (a temporary table on PG)
    seen = _statements(store)
    assert sorted(record_new_events(store, batch[1:])) == sorted(e.id for e in batch[1:])
    # SQLAlchemy's own statements only (the COPY runs on the driver's cursor): no row by row
    assert seen.count("INSERT") <= 1 and len(seen) <= 3, seen


def test_exactly_once_with_stored_and_repeated_ids(store: Store) -> None:
    first = [_event(i) for i in range(300)]
    assert sorted(record_new_events(store, first)) == sorted(e.id for e in first)
    again = [_event(i) for i in range(300, 320)]
    mixed = [*first[::7], *again, again[0], first[1]]
    assert sorted(record_new_events(store, mixed)) == sorted(e.id for e in again)
    assert record_new_events(store, mixed) == []
    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(select(events.c.id))]
    assert len(ids) == len(set(ids)) == 320


def test_rows_read_back_as_the_gate_made_them(store: Store) -> None:
    e = _event(1)
    record_new_events(store, [e])
    with store.connect() as conn:
        back = dict(conn.execute(select(events)).mappings().one())
    want = _event_row(e, back["stored_at"])
    assert back["at"].replace(tzinfo=UTC) == want.pop("at")
    back.pop("at")
    stored_at = want.pop("stored_at")
    assert back.pop("stored_at") == stored_at
    assert back == want
    assert "4111 **** **** 1111" in back["message"] and "\x00" not in back["message"]
    assert back["data"]["evidence"] == ["4111-****-****-1111"]
    assert back["rule"] == "r ***-**-8401"


def _indexes(store: Store) -> set[str]:
    from sqlalchemy import inspect

    with store.connect() as conn:
        return {i["name"] for i in inspect(conn).get_indexes("events")}


def test_core_0003_indexes_every_filter_in_keyset_order_and_goes_back(store: Store) -> None:
    from alembic import command

    from stockade.store.db import _alembic_config

    keyset = {
        "ix_events_at_id",
        "ix_events_kind_at_id",
        "ix_events_category_at_id",
        "ix_events_level_at_id",
        "ix_events_namespace_at_id",
        "ix_events_category_level_at_id",
        "ix_events_namespace_level_at_id",
    }
    assert keyset <= _indexes(store) and "ix_events_at" not in _indexes(store)
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "core_0002")
    back = _indexes(store)
    assert {"ix_events_at", "ix_events_kind_at", "ix_events_level_at"} <= back
    assert not back & (keyset - {"ix_events_at_id"})
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "core_0003")
    assert keyset <= _indexes(store)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def paged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, list[Event]]]:
    """400 events of every kind, level and namespace, with ties on ``at``, stored once for every
    filter's pages (the tests only read them)."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path_factory.mktemp('paged') / 'paged.db'}")
    else:
        s = open_store(pg_url("stockade_bulk_pages_test"))
    kinds = ["scan.critical_vulnerability", "tls.weak_version", "dlp.sensitive_in_clear"]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    evs = [
        Event(
            kind=kinds[i % 3],
            message=f"e{i}",
            severity=Severity(i % 6),
            resource=ResourceRef(kind="Pod", name="p", namespace=f"team-{i % 4}"),
            at=base + timedelta(seconds=i // 5),  # ties on at: id decides
            id=uuid.uuid4().hex,
        )
        for i in range(400)
    ]
    record_new_events(s, evs)
    yield s, evs
    s.close()


@pytest.mark.parametrize(
    "f",
    [
        EventFilter(),
        EventFilter(category="tls", min_level=Severity.CRITICAL),
        EventFilter(category="dlp", min_level=Severity.LOW),
        EventFilter(min_level=Severity.UNKNOWN),
        EventFilter(kind="scan.*"),
        EventFilter(kind="scan.critical_vulnerability"),
        EventFilter(kind="s*"),
        EventFilter(namespace="team-3", min_level=Severity.MEDIUM),
    ],
)
def test_pages_by_index_ranges_are_the_filter_in_order(
    paged: tuple[Store, list[Event]], f: EventFilter
) -> None:
    """Every page, followed by cursor, is exactly the events the filter selects, newest first,
    each once (the per-level ranges merge without gaps or repeats across pages, ties included)."""
    store, evs = paged
    want = sorted((e for e in evs if f.matches(e)), key=lambda e: (e.at, e.id), reverse=True)
    got: list[str] = []
    before = None
    while True:
        page, before = events_page(store, f, limit=7, before=before)
        got += [e.id for e in page]
        if before is None:
            break
    assert got == [e.id for e in want]


def test_a_category_at_a_level_is_read_from_one_index_range(tmp_path: Any) -> None:
    """The tail of the events API (354 ms p99 on 1,000,000 events) was ``category=tls&
    level=critical``: read by category in time order, level filtered row by row. Now each level
    value is an index range of its own (SQLite's plan says both equalities)."""

    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    record_new_events(store, [_event(i) for i in range(50)])
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    f = EventFilter(category="tls", min_level=Severity.CRITICAL)
    events_page(store, f, limit=100, before=(datetime(2026, 6, 1, tzinfo=UTC), "f" * 32))
    event.remove(store.engine, "before_cursor_execute", before)
    (statement, parameters) = statements[-1]
    with store.engine.connect() as conn:
        plan = " | ".join(
            r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
    store.close()
    assert "category=? AND level=? AND at<?" in plan, plan


def test_upsert_rows_replaces_by_key_even_twice_in_one_transaction(store: Store) -> None:
    from stockade.network.tables import graph_nodes
    from stockade.store.bulk import upsert_rows

    at = datetime(2026, 1, 1, tzinfo=UTC)

    def node(ident: str, name: str) -> dict[str, Any]:
        return {
            "id": ident,
            "kind": "workload",
            "namespace": "shop",
            "name": name,
            "labels": {"app": name},
            "address": None,
            "first_seen": at,
            "last_seen": at,
            "version": 1,  # the graph version of the merge that wrote the row (graph14_0001)
        }

    with store.begin() as conn:
        upsert_rows(conn, graph_nodes, ["id"], [node("wl:shop/a", "a"), node("wl:shop/b", "b")])
        upsert_rows(conn, graph_nodes, ["id"], [node("wl:shop/a", "a2")])  # same key, same tx
    with store.begin() as conn:
        upsert_rows(conn, graph_nodes, ["id"], [node("wl:shop/b", "b2"), node("wl:shop/c", "c")])
    with store.connect() as conn:
        got = {r.id: (r.name, r.labels) for r in conn.execute(select(graph_nodes))}
    assert got == {
        "wl:shop/a": ("a2", {"app": "a2"}),
        "wl:shop/b": ("b2", {"app": "b2"}),
        "wl:shop/c": ("c", {"app": "c"}),
    }


def test_the_graph_aggregate_of_a_batch_is_not_written_row_by_row(store: Store) -> None:
    """A batch's events change ~100 edges: on PostgreSQL one statement for them all (COPY), not
    one a row (psycopg's executemany: most of the ingestion's time before)."""
    from stockade.network import received

    def pair(i: int) -> Event:
        peer = ResourceRef(kind="pod", name=f"db-{i % 7}", namespace="data")
        return dataclasses.replace(_event(i), peer=peer)

    batch = [pair(i) for i in range(300)]
    record_new_events(
        store, batch[:1], also=lambda conn, ids: received.store_new(conn, [], batch[:1])
    )
    many: list[int] = []

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, executemany: bool
    ) -> None:
        if executemany and statement.lstrip().upper().startswith("INSERT"):
            many.append(len(params))

    event.listen(store.engine, "before_cursor_execute", before)
    record_new_events(store, batch, also=lambda conn, ids: received.store_new(conn, [], batch))
    from stockade.network.tables import graph_edges

    with store.connect() as conn:
        edges = conn.execute(select(graph_edges.c.key)).all()
    assert len(edges) >= 300
    if store.dialect == "postgresql":
        assert many == [], many


def test_upsert_rows_leaves_the_fixed_columns_of_a_stored_row(store: Store) -> None:
    """The graph's rows are merged with their key's own columns left as stored: an update does
    not set them (so SQLite does not rewrite the indexes on them)."""
    from stockade.network.tables import graph_edges
    from stockade.store.bulk import upsert_rows

    def edge(src: str, connections: int) -> dict[str, Any]:
        return {
            "key": "wl:a/b>wl:c/d|1|clear",
            "src": src,
            "dst": "wl:c/d",
            "hour": 1,
            "encryption": "clear",
            "connections": connections,
            "violations": 0,
            "blocked": 0,
            "bytes": 0,
            "ports": "tcp/443",
            "protocols": "",
            "dlp": "",
            "first_seen": "2026-01-01T00:00:00+00:00",
            "last_seen": "2026-01-01T00:00:00+00:00",
            "version": connections,
        }

    fixed = frozenset({"src", "dst", "hour", "encryption"})
    for n, src in enumerate(["wl:a/b", "changed"], start=1):
        with store.begin() as conn:
            upsert_rows(conn, graph_edges, ["key"], [edge(src, n)], fixed=fixed)
    with store.connect() as conn:
        got = conn.execute(select(graph_edges.c.src, graph_edges.c.connections)).all()
    assert [tuple(r) for r in got] == [("wl:a/b", 2)]


def test_a_batch_after_another_write_of_its_transaction_is_stored_once(store: Store) -> None:
    """On SQLite the batch's transaction takes the write lock before it looks for stored ids;
    one that has written already holds it (no second BEGIN)."""
    from stockade.store.bulk import insert_new_rows

    first = [_event(i) for i in range(5)]
    record_new_events(store, first[:2])
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(events.delete().where(events.c.id == "nothing"))  # a write first
        got = insert_new_rows(conn, [_event_row(e, now) for e in first])
    assert sorted(got) == sorted(e.id for e in first[2:])


def test_rows_sharing_values_are_written_as_sqlalchemy_writes_each(tmp_path: Any) -> None:
    """SQLite: the store's insert converts a JSON or time value shared by rows once; every row
    is still written as SQLAlchemy's own insert writes it, shared or equal or apart. (COPY on
    PostgreSQL writes a missing peer as NULL where SQLAlchemy writes JSON null.)"""
    store = open_store(f"sqlite:///{tmp_path / 'shared.db'}")
    at = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    shared = {"kind": "pod", "name": "web", "labels": {"a": "b"}}
    rows = []
    for i in range(6):
        row = _event_row(_event(i), at if i % 2 else at + timedelta(microseconds=i))
        row["resource"] = shared if i < 3 else dict(shared, name=f"web-{i}")
        row["peer"] = None if i == 4 else shared
        row["data"] = {"n": [1, 2.5, None, "x"]} if i % 3 else row["data"]
        rows.append(row)
    theirs = [dict(r, id=uuid.uuid4().hex) for r in rows]
    with store.begin() as conn:
        assert len(insert_new_rows(conn, rows)) == 6
        conn.execute(insert(events), theirs)
    columns = [c for c in events.c if c.name != "id"]
    with store.connect() as conn:
        got = {
            r[0]: tuple(r[1:])
            for r in conn.execute(select(events.c.id, *[cast(c, Text) for c in columns]))
        }
    store.close()
    assert [got[r["id"]] for r in rows] == [got[r["id"]] for r in theirs]


@pytest.mark.parametrize("first_commits", [True, False])
def test_a_batch_another_transaction_is_storing_is_stored_once(
    store: Store, first_commits: bool
) -> None:
    """Two replicas taking the same batch at once: the second waits for the first transaction
    (on PostgreSQL its COPY fails on the unique index once the first commits, and the
    conflict-checked insert takes over) and stores only what the first did not."""
    import threading

    batch = [_event(i) for i in range(50)]
    later = [_event(i) for i in range(50, 60)]
    now = datetime.now(UTC)
    second: list[str] = []
    with store.begin() as conn:
        assert sorted(insert_new_rows(conn, [_event_row(e, now) for e in batch])) == sorted(
            e.id for e in batch
        )
        if store.dialect == "postgresql":  # SQLite's writers queue on its file lock instead
            taker = threading.Thread(
                target=lambda: second.extend(record_new_events(store, [*later, *batch]))
            )
            taker.start()
            taker.join(0.5)
            assert taker.is_alive()  # waiting for this transaction
        if not first_commits:
            conn.rollback()
    if store.dialect == "postgresql":
        taker.join(30)
    else:
        second.extend(record_new_events(store, [*later, *batch]))
    want = later if first_commits else [*later, *batch]
    assert sorted(second) == sorted(e.id for e in want)
    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(select(events.c.id))]
    assert sorted(ids) == sorted(e.id for e in [*batch, *later])


def test_an_error_other_than_a_stored_id_is_not_taken_for_one(store: Store) -> None:
    """Only a unique violation sends the batch to the conflict-checked insert; any other refusal
    of the database fails the batch as before, and nothing of it is stored."""
    from sqlalchemy.exc import DBAPIError

    now = datetime.now(UTC)
    rows = [_event_row(_event(i), now) for i in range(3)]
    rows[1] = dict(rows[1], kind=None)  # NOT NULL
    with pytest.raises(DBAPIError), store.begin() as conn:
        insert_new_rows(conn, rows)
    with store.connect() as conn:
        assert conn.execute(select(events.c.id)).all() == []


@pytest.fixture
def pg_store() -> Iterator[Store]:
    s = open_store(pg_url("stockade_bulk_binary_test"))
    yield s
    s.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [("count", 2**31), ("count", -(2**31) - 1), ("level", 2**40)],
)
def test_binary_copy_refuses_what_the_column_cannot_hold(
    pg_store: Store, column: str, value: Any
) -> None:
    """psycopg's binary dumpers wrap an integer beyond the column's range (2**31 would be stored
    as -2**31): the COPY refuses it as the server refuses it in text, and stores nothing."""
    from sqlalchemy.exc import DBAPIError

    now = datetime.now(UTC)
    rows = [_event_row(_event(i), now) for i in range(3)]
    rows[2] = dict(rows[2], **{column: value})
    with pytest.raises(DBAPIError, match=column), pg_store.begin() as conn:
        insert_new_rows(conn, rows)
    with pg_store.connect() as conn:
        assert conn.execute(select(events.c.id)).all() == []


def test_binary_copy_keeps_the_limits_and_takes_a_time_without_zone_as_utc(
    pg_store: Store,
) -> None:
    now = datetime(2026, 3, 1, 12, 30, 15, 123456)
    rows = [_event_row(_event(i), now.replace(tzinfo=UTC)) for i in range(2)]
    rows[0] = dict(rows[0], count=2**31 - 1, level=-(2**31), at=now)  # naive: as the store's UTC
    with pg_store.begin() as conn:
        insert_new_rows(conn, rows)
    with pg_store.connect() as conn:
        got = dict(
            conn.execute(select(events).where(events.c.id == rows[0]["id"])).mappings().one()
        )
    assert (got["count"], got["level"]) == (2**31 - 1, -(2**31))
    assert got["at"] == now.replace(tzinfo=UTC) == got["stored_at"]


def test_planted_numbers_through_the_whole_path_are_stored_masked_and_once(store: Store) -> None:
    """take_batch from the JSON an agent posts (orjson's decoding, the envelope's checks taking a
    plain string without their call, the slots filled directly) to the stored text: a card or an
    SSN planted in any string of an event, written in several ways, never reaches a stored row
    unmasked, neither the event's nor the connection graph's (its nodes and edges, the DLP
    flows' reporters); the same body again stores nothing."""
    import json

    from stockade.api.agents import take_batch
    from stockade.network.tables import graph_dlp_flows, graph_edges, graph_nodes

    cards = ["4111111111111111", "5500 0000 0000 0004", "3400-000000-00009", "6011.0000.0000.0004"]
    ssns = ["536-22-8401", "536228401"]
    planted = cards + ssns
    docs = []
    for i in range(60):
        n = planted[i % len(planted)]
        bare = "".join(ch for ch in n if ch.isdigit())
        # what the graph reads from an event's data: addresses, protocol, sensor, the flow
        facts = {"client_ip": f"10.{n}", "server_ip": n, "app": f"proto.{bare}",
                 "sensor": f"dlp.s{bare}", "port": 443}  # fmt: skip
        if i % 2:
            facts["flow"] = f"tcp/{n}:1>10.0.0.9:80"
        e = Event(
            kind="dlp.sensitive_in_clear",
            message=f"seen {n} at {i}",
            source="sensor",
            resource=ResourceRef(kind="pod", name=f"web-{n}", namespace=f"ns{i}",
                                 labels=(("card", n), (f"k{n}", "v"))),
            peer=ResourceRef(kind="external", name=n),
            data={"evidence": [n, {"deep": f"[{n}]"}], f"key {n}": 1, "id": f"conn-{i}", **facts},
            node=f"node {n}", rule=f"rule {n}", action="alert",
        )  # fmt: skip
        docs.append(e.to_dict())
    agent = {"name": "a1", "node": "n1", "version": "1", "capabilities": ["dlp"]}
    body = json.dumps({"agent": agent, "events": docs}).encode()
    taken = take_batch(store, body, token_name="t")
    assert taken.answer == {"accepted": 60, "duplicates": 0}
    assert take_batch(store, body, token_name="t").answer == {"accepted": 0, "duplicates": 60}
    # every column an agent's strings reach (not the times, the numbers, the id checked as hex)
    texts = [c for c in events.c if c.name not in {"id", "at", "stored_at", "level", "count"}]
    with store.connect() as conn:
        rows = conn.execute(select(*(cast(c, Text) for c in texts))).all()
        graph = [
            conn.execute(select(*(cast(c, Text) for c in t.c))).all()
            for t in (graph_nodes, graph_edges, graph_dlp_flows)
        ]
    assert len(rows) == 60
    assert len(graph[0]) >= 60 and len(graph[1]) >= 60 and graph[2]
    rows += [row for table in graph for row in table]
    values = [str(v) for row in rows for v in row if v is not None]
    for n in planted:
        bare = "".join(ch for ch in n if ch.isdigit())
        for v in values:  # written as planted, or its digits with the separators taken out
            assert n not in v and bare not in "".join(ch for ch in v if ch not in " .-"), (n, v)
    assert any("conn-59" in v for v in values)  # the event's own link id is kept as it is


def _odd_events() -> list[Event]:
    """Events of every shape the store takes: planted cards and SSNs in each string, NUL and lone
    surrogates, times without a zone or in another zone, shared and repeated resources, data that
    is not plain JSON or holds an own id, counts at the column's limits."""
    from datetime import timezone
    from enum import Enum, StrEnum

    class Colour(Enum):
        RED = "red"

    class Tone(StrEnum):
        LOW = "low"

    card, ssn = "4111 1111 1111 1111", "536-22-8401"
    shared = ResourceRef(kind="pod", name="web", namespace="shop", labels=(("app", "web"),))
    datas: list[dict[str, Any]] = [
        {}, {"port": 443, "bytes": 512, "sample": "4111 11** **** 1111", "seq": 7},
        {"evidence": [card], "n": None}, {f"key {ssn}": 1}, {"id": "0a1b2c3d-42"},
        {"connection": "0a1b2c3d-4111111111111111"}, {"t": (1, "x\x00")}, {"f": 2.5e-7},
        {"nan": float("nan")}, {"enum": Colour.RED}, {"strenum": Tone.LOW}, {"big": 2**70}, {"s": "\ud800"},
        {"tab": "4111\t1111\t1111\t1111"}, {"pct": "4111%201111%201111%201111"},
        {"esc": 'quote " and \\ back'}, {"deep": {"a": [{"b": "x" * 20}]}},
    ]  # fmt: skip
    base = _event(0)
    out = []
    for i, data in enumerate(datas * 3):
        texts = ["plain", card, ssn, "nul\x00", "lone \udc80", f"msg {i}"]
        pick = texts[i % len(texts)]
        at = [datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 12),
              datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))][i % 3]  # fmt: skip
        out.append(
            dataclasses.replace(
                base,
                id=[uuid.uuid4().hex, f"id-{i}\x00", f"id \udc81 {i}", f"id {card} {i}"][i % 4],
                message=f"{pick} {i}",
                source=pick,
                resource=[shared, None, ResourceRef(kind="pod", name=pick, namespace=pick)][i % 3],
                peer=[None, shared, ResourceRef(kind="external", name=card)][i % 3],
                data=data,
                at=at,
                severity=list(Severity)[i % len(Severity)],
                action=[None, "alert", pick][i % 3],
                mode=[None, "monitor"][i % 2],
                node=[None, pick][i % 2],
                rule=[None, f"rule {pick}"][i % 2],
                count=[1, 2**31 - 1, 5][i % 3],
            )
        )
    return out


def test_copy_rows_built_from_events_are_the_rows_the_reference_sends() -> None:
    """records._event_values (the COPY's form built from an event, the gate's walk of plain data
    decided on its JSON text at once) equals CopyForm of _event_row (the row's dict, the gate on
    every string, then the generic conversion), for events of every shape, twice (the second
    time the caches of passed strings and resources answer)."""
    from stockade.store.bulk import CopyForm
    from stockade.store.records import _event_values

    def outcome(build: Any) -> Any:
        try:
            return build()
        except Exception as exc:  # both refuse alike (an Enum json cannot write)
            return f"{type(exc).__name__}: {exc}"

    now = datetime.now(UTC)
    evs = _odd_events()
    for _ in range(2):
        for e in evs:
            fast = outcome(lambda: _event_values(e, now))  # noqa: B023
            assert fast == outcome(lambda: CopyForm(events)(_event_row(e, now))), e  # noqa: B023


def test_planted_numbers_in_data_never_pass_the_whole_text_check() -> None:
    """Data whose strings the gate changes is never written from its JSON text as it is: a card
    or SSN planted in any string of it, in any of the gate's spellings, is stored masked."""
    import json

    from stockade.store.records import _event_values

    now = datetime.now(UTC)
    planted = ["4111111111111111", "5500 0000 0000 0004", "3400-000000-00009", "536-22-8401",
               "536228401", "6011.0000.0000.0004", "4111%201111%201111%201111",
               "4111_1111_1111_1111", "4111+1111+1111+1111", "536 22 8401"]  # fmt: skip
    for n in planted:
        for data in ({"x": n}, {n: 1}, {"a": [1, {"b": f"see {n}."}]}, {"id": n}):
            e = dataclasses.replace(_event(1), data=data)
            stored = json.loads(_event_values(e, now)[8])
            bare = "".join(ch for ch in n if ch.isdigit())
            assert bare not in "".join(ch for ch in json.dumps(stored) if ch.isdigit()), stored


def test_the_heartbeat_on_the_drivers_cursor_stores_what_sqlalchemys_upsert_stores(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the heartbeat's upsert runs on the driver's cursor: the same row as
    SQLAlchemy's statement (the reference, SQLite's path), first seen and again; an agent's
    strings pass the masking gate on both."""
    from stockade.api import agents as agents_module
    from stockade.api.tables import agents
    from stockade.events.ingest import AgentInfo
    from stockade.model.redact import redact_text

    def beat(name: str, n: int, *, reference: bool) -> None:
        agent = AgentInfo(name=name, node=f"node-{n} 4111111111111111", version="1.0",
                          capabilities=("dlp", f"x{n}"))  # fmt: skip
        with monkeypatch.context() as m, store.begin() as conn:
            if reference:
                m.setattr(agents_module, "copies", lambda conn: False)
            agents_module.heartbeat_in(conn, agent, token_name="t", accepted=n, duplicates=1)

    for n in (3, 5):
        beat("fast-4111111111111111", n, reference=False)
        beat("reference-4111111111111111", n, reference=True)
    with store.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(agents))}
    assert set(rows) == {redact_text(f"{n}-4111111111111111") for n in ("fast", "reference")}
    fast, reference = (rows[n]._asdict() for n in sorted(rows))
    for row in (fast, reference):
        assert row.pop("name") and row.pop("first_seen") <= row.pop("last_seen")
    assert fast == reference
    assert fast["node"] == redact_text("node-5 4111111111111111") != "node-5 4111111111111111"
    assert fast["capabilities"] == ["dlp", "x5"]
    assert (fast["accepted"], fast["duplicates"]) == (8, 2)
