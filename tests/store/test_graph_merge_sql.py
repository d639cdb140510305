"""The connection graph's merge in the upsert on PostgreSQL and SQLite (stockade.network.graph's
``_NODES_MERGED`` / ``_EDGES_MERGED`` and their SQLite forms) stores what the merge in Python
stores (the reference): random batches of connections and events, some naming the same edges and nodes
again, older sightings after newer ones, empty labels, no address, more than MAX_LISTED ports,
several DLP sensors."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from stockade.model import Event, ResourceRef, Severity
from stockade.network import graph
from stockade.network.graph import Delta
from stockade.network.tables import graph_edges, graph_nodes
from stockade.store import Store, open_store, textlists
from tests.api.controller import pg_url
from tests.conftest import drop_pg_schema

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
KINDS = ("firewall.violation", "firewall.blocked", "dlp.sensitive_in_clear", "tls.required")


@pytest.fixture(params=["sqlite", "postgres"])
def two(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Store, Store]]:
    """Two stores of one dialect: one merges in SQL, the other in Python."""
    names = ("stockade_graph_merge_sql", "stockade_graph_merge_py")
    if request.param == "sqlite":
        stores = tuple(open_store(f"sqlite:///{tmp_path / n}.db") for n in names)
    else:
        stores = tuple(open_store(pg_url(n)) for n in names)
    yield stores  # type: ignore[misc]
    for s in stores:
        s.close()
    if request.param == "postgres":
        for n in names:
            drop_pg_schema(n)


def _labels(rng: random.Random) -> dict[str, str]:
    return rng.choice([{}, {}, {"tier": "web"}, {"tier": "db", "app": "x"}, {"tier": "cache"}])


def _ref(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.15:
        return {"kind": "external", "name": rng.choice(["93.184.216.34", "8.8.8.8"])}
    return {
        "kind": "pod",
        "namespace": rng.choice(["a", "b"]),
        "name": f"w-{rng.randrange(2)}",
        "labels": _labels(rng),
    }


def _connection(rng: random.Random) -> dict[str, Any]:
    start = NOW - timedelta(minutes=rng.randrange(0, 300))
    client, server = _ref(rng), _ref(rng)
    return {
        "client_kind": client["kind"],
        "client_namespace": client.get("namespace"),
        "client_name": client["name"],
        "client_ip": rng.choice([f"10.0.0.{rng.randrange(9)}", ""]),
        "server_kind": server["kind"],
        "server_namespace": server.get("namespace"),
        "server_name": server["name"],
        "server_ip": f"10.0.1.{rng.randrange(9)}",
        "start": start,
        "end": start + timedelta(seconds=rng.randrange(0, 4000)),
        "encrypted": rng.random() < 0.5,
        "bytes_to_server": rng.randrange(10**6),
        "bytes_to_client": rng.randrange(10**6),
        "transport": rng.choice(["tcp", "udp"]),
        "server_port": rng.randrange(1, 400),  # many ports an edge: more than MAX_LISTED
        "protocol": rng.choice(["proto.http", "proto.tls", "proto.dns", "proto.z", "proto.a"]),
        "data": {"client": {"labels": client.get("labels")}, "server": {}},
    }


def _event(rng: random.Random) -> Event:
    def ref() -> ResourceRef:
        r = _ref(rng)
        return ResourceRef(
            kind=r["kind"],
            name=r["name"],
            namespace=r.get("namespace"),
            labels=tuple(sorted((r.get("labels") or {}).items())),
        )

    resource, peer = ref(), ref()
    data: dict[str, Any] = {"port": rng.randrange(1, 60), "app": rng.choice(["proto.http", "x"])}
    if resource.namespace == "a":  # edges from a: one sensor, its counts added up
        data["sensor"] = "dlp.payment_card"
        data["count"] = rng.randrange(1, 5)
    elif rng.random() < 0.5:  # from b or outside: several, or the default one
        data["sensor"] = rng.choice(["dlp.payment_card", "dlp.us_ssn", "dlp.a"])
        data["count"] = rng.randrange(1, 5)
    if rng.random() < 0.3:
        data["action"] = "block"
    return Event(
        kind=rng.choice(KINDS),
        message="m",
        severity=Severity.HIGH,
        resource=resource,
        peer=peer,
        data=data,
        at=NOW - timedelta(minutes=rng.randrange(0, 300)),
    )


def _delta(rng: random.Random) -> Delta:
    d = Delta()
    for _ in range(rng.randrange(1, 120)):
        d.add_connection(_connection(rng))
    for _ in range(rng.randrange(0, 30)):
        d.add_event(_event(rng))
    return d


def _stored(store: Store) -> tuple[list[Any], list[Any]]:
    with store.connect() as conn:
        nodes = conn.execute(select(graph_nodes).order_by(graph_nodes.c.id)).all()
        edges = conn.execute(select(graph_edges).order_by(graph_edges.c.key)).all()
    return [tuple(r) for r in nodes], [tuple(r) for r in edges]


def test_the_merge_in_sql_stores_what_the_merge_in_python_stores(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_sql, in_python = two
    rng = random.Random(14)
    for step in range(40):
        seed = rng.randrange(2**32)
        with in_sql.begin() as conn:
            _delta(random.Random(seed)).apply(conn)
        with monkeypatch.context() as m, in_python.begin() as conn:
            m.setattr(graph, "merges_in_sql", lambda conn: False)
            _delta(random.Random(seed)).apply(conn)
        assert _stored(in_sql) == _stored(in_python), f"step {step}"
    nodes, edges = _stored(in_sql)
    assert any(len(e[9].split(",")) == graph.MAX_LISTED for e in edges)  # ports were cut
    assert any("," in e[11] for e in edges)  # edges with DLP counts of several sensors
    # and of one sensor, added up over merges (at most 4 a hit)
    assert any(e[11] and "," not in e[11] and int(e[11].rpartition("=")[2]) > 4 for e in edges)
    assert any(n[4] for n in nodes) and any(not n[4] for n in nodes)  # labels, and none


def test_the_merge_reads_none_of_the_stored_rows(two: tuple[Store, Store]) -> None:
    """The stored nodes and edges are merged in the upsert: a batch reads none of them back
    (the read and the merge in Python were a third of the ingestion's CPU)."""
    store = two[0]
    rng = random.Random(5)
    with store.begin() as conn:
        _delta(rng).apply(conn)
    reads: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and ("NETWORK_GRAPH_EDGES" in text or "NODES" in text):
            reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", before)
    with store.begin() as conn:
        _delta(rng).apply(conn)
    assert reads == []


def test_copy_rows_built_from_a_delta_are_the_rows_the_reference_sends() -> None:
    """On PostgreSQL the nodes and edges merged in SQL are COPYed as lists built from the delta
    (graph._node_copy_rows, _edge_copy_rows): equal to CopyForm of the reference's row dicts
    (_node_rows, _edge_rows with nothing stored known), on random batches with times in other
    zones; a number beyond its column is refused by both alike."""
    from datetime import timezone

    from stockade.store.bulk import CopyForm

    def outcome(build: Any) -> Any:
        try:
            return build()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    rng = random.Random(3)
    zone = timezone(timedelta(hours=-5))
    for step in range(30):
        d = _delta(rng)
        for _ in range(3):
            e = _event(rng)
            d.add_event(dataclasses.replace(e, at=e.at.astimezone(zone)))
        version = rng.randrange(1, 2**40)
        edges = graph._with_totals(d.edges)
        if step % 10 == 9:  # beyond int8 (bytes), int4 (connections)
            one = next(iter(edges.values()))
            one.bytes, one.connections = (2**63, 1) if step == 9 else (1, 2**31)
        keyed = graph._keyed(edges)
        assert graph._node_copy_rows(d.nodes, version) == [
            CopyForm(graph_nodes)(r) for r in graph._node_rows(d.nodes, {}, version)
        ]
        fast = outcome(lambda: graph._edge_copy_rows(keyed, version))  # noqa: B023
        reference = outcome(
            lambda: [CopyForm(graph_edges)(r) for r in graph._edge_rows(keyed, {}, version)]  # noqa: B023
        )
        assert fast == reference, step
        assert isinstance(fast, list) == (step % 10 != 9), fast


@pytest.mark.parametrize("old", ["dlp=3", "a=1", "=4", "dlp=", "x=y=2", "", "a=1,dlp=2", "q"])
@pytest.mark.parametrize("new", ["dlp=5", "a=2", "dlp=", "x=y=1", "", "dlp=5,dlp=1", "a=1,b=2"])
def test_sqlite_sums_counts_as_the_merge_in_python_does(old: str, new: str) -> None:
    total = textlists.counts(new)
    for name, n in textlists.counts(old).items():
        total[name] = total.get(name, 0) + n
    expected = ",".join(f"{k}={v}" for k, v in sorted(total.items()))
    assert textlists.summed_counts(old, new) == expected


@pytest.mark.parametrize(
    ("app", "encryption"),
    [("proto.tls", "tls"), ("proto.ssh", "tls"), ("proto.quic", "tls"), ("proto.http", "clear"),
     (None, "unknown")],
)  # fmt: skip
def test_an_edge_over_a_protocol_encrypted_from_its_first_bytes_is_not_clear(
    app: str | None, encryption: str
) -> None:
    delta = Delta()
    data: dict[str, Any] = {"port": 22} | ({"app": app} if app else {})
    delta.add_event(
        Event(
            kind="firewall.violation",
            message="m",
            severity=Severity.MEDIUM,
            resource=ResourceRef(kind="pod", name="a", namespace="n"),
            peer=ResourceRef(kind="pod", name="b", namespace="n"),
            data=data,
        )
    )
    assert [key[3] for key in delta.edges] == [encryption]
