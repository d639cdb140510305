"""The connection graph's maintained aggregate: edges between nodes, by hour and encryption.

Every connection row stored and every event that says something about a connection (a firewall
violation or block, a DLP hit) adds to one edge row, keyed by (client node, server node, hour,
encryption), in the same transaction that stores it. A DLP hit that names its flow
(``data.flow``) counts once however many agents report it: the sensor and the enforcer both see
a flow, and the first to report a finding of it is the one counted. Reading the graph then costs one row per
edge and hour, never a scan of the connections.

Node ids are stable, so a map can apply updates to what it drew: ``wl:NAMESPACE/NAME`` for a
workload, ``ext:ADDRESS`` for an address outside the cluster. They are made of names that passed
the masking gate: a connection row is masked before it is added, and every string an event
brings (its resource and peer, the addresses, protocol, sensor and flow in its data, its
reporter) passes the gate here before it is cut to its column's length.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, any_, func, literal, or_, select, text, update
from sqlalchemy.engine import Connection

from stockade.model import Event
from stockade.network.tables import graph_dlp_flows, graph_edges, graph_meta, graph_nodes
from stockade.store.bulk import CopyForm, copies, driver_execute, merges_in_sql, upsert_rows
from stockade.store.jsontext import json_text
from stockade.store.records import stored_ref
from stockade.store.rows import _storable_text
from stockade.store.textlists import counts as _counts
from stockade.store.textlists import listed as _listed

_SLUG = re.compile(r"[a-z][a-z0-9_.-]{0,79}\Z")  # what may go in the comma-separated lists
ALL_TIME = -1  # the hour of the rows that total every hour: what a graph without a window reads
MAX_LISTED = 32  # ports and protocols kept per edge row
_CHUNK = 400  # keys per SELECT (4 bound parameters each)
_FAR = 1 << 62  # the order of a report written in this batch: after every stored one
# What a row's key says already (node_id(kind, namespace, name); src>dst|hour|encryption): never
# updated, so merging into a stored row leaves the indexes on them alone.
_NODE_FIXED = frozenset({"kind", "namespace", "name"})
_EDGE_FIXED = frozenset({"src", "dst", "hour", "encryption"})
_PG_LOCK = 7355609  # serializes graph upserts across controller replicas (read, merge, write)

# Events that change an edge's status or DLP count, and how.
VIOLATION_KINDS = frozenset({"firewall.violation", "tls.required"})
BLOCK_KINDS = frozenset({"firewall.blocked", "dlp.blocked", "tls.required"})
DLP_KINDS = frozenset({"dlp.sensitive_in_clear", "dlp.blocked"})
# protocols encrypted from their first bytes: an edge over them is not "clear" (the map's "tls")
_ENCRYPTED_APPS = frozenset({"proto.tls", "proto.ssh", "proto.quic"})
_EDGE_KINDS = VIOLATION_KINDS | BLOCK_KINDS | DLP_KINDS
# How far apart the sensor's and the enforcer's reports of one flow may be (the sensor says when
# the connection started, the enforcer when it saw the data); beyond it, the same client port is
# another connection.
FLOW_WINDOW = timedelta(minutes=10)
_DIRECTIONS = {
    "request": "request",
    "client": "request",
    "response": "response",
    "server": "response",
}


def node_id(kind: str, namespace: str | None, name: str) -> str:
    """The stable id of a graph node: ``ext:ADDRESS`` or ``wl:NAMESPACE/NAME``."""
    if kind == "external":
        return f"ext:{name[:253]}"
    return f"wl:{(namespace or '')[:253]}/{name[:253]}"


def is_internet(address: str) -> bool:
    """A public address (the map's "internet" node gathers them above the workload level)."""
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def hour_of(at: datetime) -> int:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return int(at.timestamp()) // 3600


@dataclass(slots=True)
class _Edge:
    connections: int = 0
    violations: int = 0
    blocked: int = 0
    bytes: int = 0
    ports: set[str] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    dlp: dict[str, int] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None

    def seen(self, start: datetime, end: datetime) -> None:
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)


@dataclass(frozen=True, slots=True)
class _Finding:
    """A DLP hit on a named flow, waiting for apply() to know whether it was reported before."""

    edge: tuple[str, str, int, str]
    flow: str
    sensor: str
    direction: str
    reporter: str
    at: datetime
    amount: int


@dataclass(slots=True)
class _Node:
    kind: str
    namespace: str | None
    name: str
    labels: dict[str, str]
    address: str | None
    first: datetime
    last: datetime


class Delta:
    """What a batch adds to the graph, merged into the store by :meth:`apply`."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str, int, str], _Edge] = {}
        self.nodes: dict[str, _Node] = {}
        self.dlp_findings: list[_Finding] = []  # DLP hits naming their flow, counted in apply()

    def __bool__(self) -> bool:
        return bool(self.edges or self.nodes)

    def _node(self, ref: Mapping[str, Any], address: str | None, at: datetime) -> str:
        labels = ref.get("labels") or {}
        return self._sighted(
            ref.get("kind"), ref.get("name"), ref.get("namespace"), labels, address, at
        )

    def _sighted(
        self,
        given_kind: Any,
        given_name: Any,
        given_namespace: Any,
        labels: Mapping[str, str] | Iterable[tuple[str, str]],
        address: str | None,
        at: datetime,
    ) -> str:
        """A node seen at ``at``, named by a resource's fields (masked already)."""
        kind = "external" if given_kind == "external" else "workload"
        name = str(given_name or address or "?")[:253]
        namespace = given_namespace if kind == "workload" else None
        ident = node_id(kind, namespace, name)
        known = self.nodes.get(ident)
        if known is None:
            self.nodes[ident] = _Node(
                kind=kind,
                namespace=namespace,
                name=name,
                labels=dict(labels),
                address=address,
                first=at,
                last=at,
            )
        else:
            known.first, known.last = min(known.first, at), max(known.last, at)
            if at >= known.last:
                known.labels = dict(labels) or known.labels
                known.address = address or known.address
        return ident

    def _edge(self, src: str, dst: str, at: datetime, encryption: str) -> _Edge:
        key = (src, dst, hour_of(at), encryption)
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edges[key] = _Edge()
        return edge

    def add_connection(self, row: Mapping[str, Any]) -> None:
        """One stored ``network_connections`` row (masked already)."""
        data = row.get("data") or {}
        client = {
            "kind": row["client_kind"],
            "namespace": row["client_namespace"],
            "name": row["client_name"],
            "labels": (data.get("client") or {}).get("labels"),
        }
        server = {
            "kind": row["server_kind"],
            "namespace": row["server_namespace"],
            "name": row["server_name"],
            "labels": (data.get("server") or {}).get("labels"),
        }
        start, end = row["start"], row["end"]
        src = self._node(client, row["client_ip"], end)
        dst = self._node(server, row["server_ip"], end)
        edge = self._edge(src, dst, start, "tls" if row["encrypted"] else "clear")
        edge.connections += 1
        edge.bytes += int(row["bytes_to_server"]) + int(row["bytes_to_client"])
        edge.ports.add(f"{row['transport']}/{row['server_port']}")
        edge.protocols.add(str(row["protocol"]))
        edge.seen(start, end)

    def add_event(self, event: Event) -> None:
        """An event about a connection: a violation, a block, a DLP hit (others are ignored)."""
        kind = event.kind
        if kind not in _EDGE_KINDS:
            return
        if event.resource is None or event.peer is None:
            return
        data = event.data
        blocked = kind in BLOCK_KINDS and (kind != "tls.required" or data.get("action") == "block")
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        # the resource and peer as the event's row stores them: through the gate (kept by
        # content once they passed unchanged)
        src = self._node(stored_ref(event.resource), _text(data, "client_ip", "src_ip"), at)
        dst = self._node(stored_ref(event.peer), _text(data, "server_ip", "dst_ip"), at)
        app = _text(data, "app", "protocol")
        app = app if app is not None and _SLUG.match(app) else None
        if kind in DLP_KINDS:
            encryption = "clear"  # DLP only sees what travels in clear
        elif app is None:
            encryption = "unknown"
        else:
            encryption = "tls" if app in _ENCRYPTED_APPS else "clear"
        edge = self._edge(src, dst, at, encryption)
        if blocked:
            edge.blocked += 1
        elif kind in VIOLATION_KINDS:
            edge.violations += 1
        if kind in DLP_KINDS:
            sensor = _text(data, "sensor") or "dlp"
            sensor = sensor if _SLUG.match(sensor) else "dlp"
            count = data.get("count")
            amount = count if isinstance(count, int) and 0 < count < 1_000_000 else 1
            flow = _text(data, "flow")
            if flow is None:  # an agent that does not name the flow: counted as it comes
                edge.dlp[sensor] = edge.dlp.get(sensor, 0) + amount
            else:  # counted in apply(), once per finding whoever else reports it
                direction = _DIRECTIONS.get(str(data.get("direction")), "request")
                self.dlp_findings.append(
                    _Finding(
                        edge=(src, dst, hour_of(at), encryption),
                        flow=flow[:200],
                        sensor=sensor,
                        direction=direction,
                        # an agent: the sensors of both ends' nodes see a flow between nodes
                        reporter=_storable_text(f"{event.source}@{event.node or ''}")[:80],
                        at=at.astimezone(UTC),  # compared with the stored times
                        amount=amount,
                    )
                )
        port = data.get("port", data.get("server_port"))
        if isinstance(port, int) and 0 <= port <= 65535:
            edge.ports.add(f"{'udp' if data.get('l4') == 'udp' else 'tcp'}/{port}")
        if app is not None:
            edge.protocols.add(app)
        edge.seen(at, at)

    def apply(self, conn: Connection) -> None:
        """Merge into the stored aggregate, inside the caller's transaction (which has written
        already, so on SQLite it holds the write lock and nobody merges in between)."""
        if not self:
            return
        dialect = conn.dialect.name
        if copies(conn):  # the fixed statements on the driver's cursor
            driver_execute(conn, f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
        elif dialect == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
        # raised first, so every row written below carries it (the lock on the version's row is
        # held to the commit: merges commit in the order of their versions)
        version = _raise_version(conn)
        _apply_nodes(conn, dialect, self.nodes, version)
        for f, first in zip(
            self.dlp_findings, _first_reports(conn, self.dlp_findings), strict=True
        ):
            if first:
                edge = self.edges[f.edge]
                edge.dlp[f.sensor] = edge.dlp.get(f.sensor, 0) + f.amount
        self.dlp_findings = []
        _apply_edges(conn, dialect, _with_totals(self.edges), version)


def _with_totals(
    edges: dict[tuple[str, str, int, str], _Edge],
) -> dict[tuple[str, str, int, str], _Edge]:
    """``edges`` and the all-time totals (hour ALL_TIME) they add to."""
    totals: dict[tuple[str, str, int, str], _Edge] = {}
    for (src, dst, _hour, encryption), e in edges.items():
        t = totals.setdefault((src, dst, ALL_TIME, encryption), _Edge())
        t.connections += e.connections
        t.violations += e.violations
        t.blocked += e.blocked
        t.bytes += e.bytes
        t.ports |= e.ports
        t.protocols |= e.protocols
        for sensor, n in e.dlp.items():
            t.dlp[sensor] = t.dlp.get(sensor, 0) + n
        assert e.first is not None and e.last is not None
        t.seen(e.first, e.last)
    return {**edges, **totals}


def _first_report(conn: Connection, f: _Finding) -> bool:
    """Whether ``f`` counts: its reporter is the first to report this finding of the flow (the
    sensor and the enforcer see the same connection; the other's report is the same finding).
    One finding, two statements: the reference :func:`_first_reports` is tested against."""
    t = graph_dlp_flows.c
    first = conn.execute(
        select(t.reporter)
        .where(
            t.flow == f.flow,
            t.sensor == f.sensor,
            t.direction == f.direction,
            t.at >= f.at - FLOW_WINDOW,
            t.at <= f.at + FLOW_WINDOW,
        )
        .order_by(t.at, t.pk)
        .limit(1)
    ).scalar()
    if first is None:
        conn.execute(
            graph_dlp_flows.insert().values(
                flow=f.flow, sensor=f.sensor, direction=f.direction, reporter=f.reporter, at=f.at
            )
        )
        return True
    return bool(first == f.reporter)


def _first_reports(conn: Connection, findings: list[_Finding]) -> list[bool]:
    """:func:`_first_report` for each of ``findings`` in order, with one SELECT per chunk of
    flows and one INSERT for the batch (a sensor's batch holds hundreds of findings)."""
    if not findings:
        return []
    t = graph_dlp_flows.c
    lo = min(f.at for f in findings) - FLOW_WINDOW
    hi = max(f.at for f in findings) + FLOW_WINDOW
    # per (flow, sensor, direction): the reports in the window, as (at, order, reporter)
    seen: dict[tuple[str, str, str], list[tuple[datetime, int, str]]] = {}
    flows = sorted({f.flow for f in findings})
    for part in _parts(flows, conn.dialect.name):
        rows = conn.execute(
            select(t.flow, t.sensor, t.direction, t.at, t.pk, t.reporter).where(
                _one_of(t.flow, part, conn.dialect.name), t.at >= lo, t.at <= hi
            )
        )
        for flow, sensor, direction, at, pk, reporter in rows:
            at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite: naive UTC
            seen.setdefault((flow, sensor, direction), []).append((at, pk, reporter))
    out: list[bool] = []
    new: list[dict[str, object]] = []
    for f in findings:
        reports = seen.setdefault((f.flow, f.sensor, f.direction), [])
        near = [r for r in reports if f.at - FLOW_WINDOW <= r[0] <= f.at + FLOW_WINDOW]
        if near:
            out.append(min(near)[2] == f.reporter)
            continue
        # written after every stored row: orders after them on equal times, as its pk will
        reports.append((f.at, _FAR + len(new), f.reporter))
        new.append(
            {"flow": f.flow, "sensor": f.sensor, "direction": f.direction,
             "reporter": f.reporter, "at": f.at}
        )  # fmt: skip
        out.append(True)
    if new:
        conn.execute(graph_dlp_flows.insert(), new)
    return out


_RAISE_VERSION = (
    f"UPDATE {graph_meta.name} SET version = version + 1 WHERE name = 'edges' RETURNING version"
)


def _raise_version(conn: Connection) -> int:
    t = graph_meta
    if copies(conn):
        found_row = driver_execute(conn, _RAISE_VERSION)
        if found_row:
            return int(found_row[0][0])
    raised = update(t).where(t.c.name == "edges").values(version=t.c.version + 1)
    if conn.dialect.update_returning:  # one statement a batch, not two
        found = conn.execute(raised.returning(t.c.version)).scalar()
        if found is not None:
            return int(found)
    elif conn.execute(raised).rowcount:
        return graph_version(conn)
    conn.execute(t.insert().values(name="edges", version=1))
    return graph_version(conn)


def graph_version(conn: Connection) -> int:
    """The aggregate's version: raised by every merge (0 before the first)."""
    t = graph_meta
    found = conn.execute(select(t.c.version).where(t.c.name == "edges")).scalar()
    return int(found or 0)


def _text(data: Mapping[str, Any], *keys: str) -> str | None:
    """The first non-empty string of ``data`` under ``keys``, through the gate, then cut (a
    number cut first could escape it)."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return _storable_text(value)[:253]
    return None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _parts(items: Sequence[str], dialect: str) -> Iterable[Sequence[str]]:
    """``items`` in the parts one :func:`_one_of` takes: all at once on PostgreSQL (one array
    parameter), chunks elsewhere (SQLite bounds the parameters of a statement)."""
    return [items] if dialect == "postgresql" else _chunks(items)


def _one_of(column: Any, values: Sequence[str], dialect: str) -> Any:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: one parameter, where an IN
    of hundreds of parameters cost the driver and SQLAlchemy four times the CPU (the statement
    rebuilt, split and adapted a parameter at a time for every batch)."""
    if dialect == "postgresql":
        # imported here: the PostgreSQL dialect is loaded by a PostgreSQL engine, not on SQLite
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(literal(list(values), ARRAY(Text)))
    return column.in_(values)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# PostgreSQL and SQLite merge a batch's nodes and edges into the stored rows in the upsert itself
# (no read of the stored rows, no merge in Python): the same answers as the merge in Python below,
# the reference (tests/store/test_graph_merge_sql.py holds them to the same stored rows). Lists
# and names compare as Python's sorted() does (code points: COLLATE "C").
_N = graph_nodes.name
_NODES_MERGED = {
    "first_seen": f"LEAST({_N}.first_seen, EXCLUDED.first_seen)",
    "last_seen": f"GREATEST({_N}.last_seen, EXCLUDED.last_seen)",
    # a newer sighting stored already keeps its labels and address; an empty one keeps them too
    "labels": f"CASE WHEN {_N}.last_seen > EXCLUDED.last_seen OR EXCLUDED.labels::text = '{{}}' "
    f"THEN {_N}.labels ELSE EXCLUDED.labels END",
    "address": f"CASE WHEN {_N}.last_seen > EXCLUDED.last_seen THEN {_N}.address "
    f"ELSE COALESCE(NULLIF(EXCLUDED.address, ''), {_N}.address) END",
}
_E = graph_edges.name


def _merged_list(column: str) -> str:
    """The sorted union of two comma-separated lists, its first MAX_LISTED items. Each list as
    written is that already (sorted, distinct, cut): when one is empty or both are the same (an
    edge seen again on its port: most merges), the answer is the other, without the sort."""
    old, new = f"{_E}.{column}", f"EXCLUDED.{column}"
    return (
        f"CASE WHEN {new} = '' OR {new} = {old} THEN {old} WHEN {old} = '' THEN {new} ELSE "
        "(SELECT coalesce(string_agg(y, ',' ORDER BY y), '') FROM "
        """(SELECT DISTINCT x COLLATE "C" AS y """
        f"FROM unnest(string_to_array({_E}.{column} || ',' || EXCLUDED.{column}, ',')) "
        f"AS u(x) WHERE x <> '' ORDER BY 1 LIMIT {MAX_LISTED}) AS s) END"
    )


_EDGES_MERGED = {
    **{c: f"{_E}.{c} + EXCLUDED.{c}" for c in ("connections", "violations", "blocked", "bytes")},
    "ports": _merged_list("ports"),
    "protocols": _merged_list("protocols"),
    # "sensor=n" items summed by sensor (as _counts reads them: the name up to the last "=")
    # one sensor on both sides (most merges): its counts added without the split and the sort
    "dlp": f"CASE WHEN EXCLUDED.dlp = '' THEN {_E}.dlp WHEN {_E}.dlp = '' THEN EXCLUDED.dlp "
    f"WHEN {_E}.dlp ~ '^[^,=]+=[0-9]{{1,18}}$' AND EXCLUDED.dlp ~ '^[^,=]+=[0-9]{{1,18}}$' "
    f"AND split_part({_E}.dlp, '=', 1) = split_part(EXCLUDED.dlp, '=', 1) "
    f"THEN split_part(EXCLUDED.dlp, '=', 1) || '=' || (split_part({_E}.dlp, '=', 2)::bigint "
    "+ split_part(EXCLUDED.dlp, '=', 2)::bigint) ELSE "
    "(SELECT coalesce(string_agg(k || '=' || n, ',' ORDER BY k), '') FROM "
    """(SELECT substring(item FROM '^(.*)=') COLLATE "C" AS k, """
    "sum(substring(item FROM '=([0-9]+)$')::numeric) AS n "
    f"FROM unnest(string_to_array({_E}.dlp || ',' || EXCLUDED.dlp, ',')) AS u(item) "
    "GROUP BY 1 HAVING count(substring(item FROM '=([0-9]+)$')) > 0) AS s WHERE k <> '') END",
    "first_seen": f'LEAST({_E}.first_seen COLLATE "C", EXCLUDED.first_seen COLLATE "C")',
    "last_seen": f'GREATEST({_E}.last_seen COLLATE "C", EXCLUDED.last_seen COLLATE "C")',
}

# SQLite: the same merges (its min() and max() of two values are LEAST and GREATEST; times are
# stored as UTC text, which compares as the times do); the lists through the functions
# stockade.store.textlists registers on every connection, where neither side settles it.
_NODES_MERGED_SQLITE = {
    "first_seen": f"min({_N}.first_seen, excluded.first_seen)",
    "last_seen": f"max({_N}.last_seen, excluded.last_seen)",
    "labels": f"CASE WHEN {_N}.last_seen > excluded.last_seen OR excluded.labels = '{{}}' "
    f"THEN {_N}.labels ELSE excluded.labels END",
    "address": f"CASE WHEN {_N}.last_seen > excluded.last_seen THEN {_N}.address "
    f"ELSE COALESCE(NULLIF(excluded.address, ''), {_N}.address) END",
}


def _merged_list_sqlite(column: str) -> str:
    old, new = f"{_E}.{column}", f"excluded.{column}"
    return (
        f"CASE WHEN {new} = '' OR {new} = {old} THEN {old} WHEN {old} = '' THEN {new} "
        f"ELSE stockade_merged_list({old}, {new}, {MAX_LISTED}) END"
    )


_EDGES_MERGED_SQLITE = {
    **{c: f"{_E}.{c} + excluded.{c}" for c in ("connections", "violations", "blocked", "bytes")},
    "ports": _merged_list_sqlite("ports"),
    "protocols": _merged_list_sqlite("protocols"),
    "dlp": f"CASE WHEN excluded.dlp = '' THEN {_E}.dlp WHEN {_E}.dlp = '' THEN excluded.dlp "
    f"ELSE stockade_summed_counts({_E}.dlp, excluded.dlp) END",
    "first_seen": f"min({_E}.first_seen, excluded.first_seen)",
    "last_seen": f"max({_E}.last_seen, excluded.last_seen)",
}


def _apply_nodes(
    conn: Connection,
    dialect: str,
    nodes: dict[str, _Node],
    version: int,
    *,
    in_sql: bool | None = None,
) -> None:
    """Merge ``nodes`` into the stored ones: in the upsert (``in_sql``: PostgreSQL and SQLite), else read
    and merged here."""
    in_sql = merges_in_sql(conn) if in_sql is None else in_sql
    if in_sql and copies(conn):
        ready = _node_copy_rows(nodes, version)
        upsert_rows(
            conn, graph_nodes, ["id"], ready, fixed=_NODE_FIXED, merged=_NODES_MERGED, ready=True
        )
        return
    known: dict[str, Any] = {}
    for part in [] if in_sql else _parts(sorted(nodes), dialect):
        q = select(graph_nodes).where(_one_of(graph_nodes.c.id, part, dialect))
        known.update({r.id: r for r in conn.execute(q)})
    merged = (
        (_NODES_MERGED if dialect == "postgresql" else _NODES_MERGED_SQLITE) if in_sql else None
    )
    rows = _node_rows(nodes, known, version)
    upsert_rows(conn, graph_nodes, ["id"], rows, fixed=_NODE_FIXED, merged=merged)


def _node_rows(
    nodes: dict[str, _Node], known: dict[str, Any], version: int
) -> list[dict[str, Any]]:
    """The rows of ``nodes``, each merged here with its stored row in ``known`` if any."""
    rows = []
    for ident in sorted(nodes):
        n = nodes[ident]
        old = known.get(ident)
        first, last, labels, address = n.first, n.last, n.labels, n.address
        if old is not None:
            first = min(first, _utc(old.first_seen))
            if _utc(old.last_seen) > last:  # an older sighting does not overwrite a newer one
                last, labels, address = _utc(old.last_seen), old.labels, old.address
            labels = labels or old.labels
            address = address or old.address
        rows.append(
            {
                "id": ident,
                "kind": n.kind,
                "namespace": n.namespace,
                "name": n.name,
                "labels": labels,
                "address": address,
                # in UTC: SQLite's merge compares the stored text
                "first_seen": _utc(first).astimezone(UTC),
                "last_seen": _utc(last).astimezone(UTC),
                "version": version,
            }
        )
    return rows


def _node_copy_rows(nodes: dict[str, _Node], version: int) -> list[list[Any]]:
    """:func:`_node_rows` with nothing stored known, in the COPY's form: what
    ``CopyForm(graph_nodes)`` makes of those rows, built without their dicts (a test holds the
    two equal; its times are datetimes, its labels strings)."""
    rows = []
    for ident in sorted(nodes):
        n = nodes[ident]
        first, last, labels = n.first, n.last, n.labels
        rows.append(
            [
                ident,
                n.kind,
                n.namespace,
                n.name,
                json_text(labels) if labels else "{}",
                n.address,
                first if first.tzinfo is UTC else _utc(first).astimezone(UTC),
                last if last.tzinfo is UTC else _utc(last).astimezone(UTC),
                version,
            ]
        )
    return rows


def _iso(at: datetime) -> str:
    return _utc(at).astimezone(UTC).isoformat(timespec="seconds")


def _apply_edges(
    conn: Connection,
    dialect: str,
    edges: dict[tuple[str, str, int, str], _Edge],
    version: int,
    *,
    in_sql: bool | None = None,
) -> None:
    """Merge ``edges`` into the stored ones (as :func:`_apply_nodes` does nodes)."""
    in_sql = merges_in_sql(conn) if in_sql is None else in_sql
    keyed = _keyed(edges)
    if in_sql and copies(conn):
        ready = _edge_copy_rows(keyed, version)
        upsert_rows(
            conn, graph_edges, ["key"], ready, fixed=_EDGE_FIXED, merged=_EDGES_MERGED, ready=True
        )
        return
    known: dict[str, Any] = {}
    for part in [] if in_sql else _parts(sorted(keyed), dialect):
        q = select(graph_edges).where(_one_of(graph_edges.c.key, part, dialect))
        known.update({r.key: r for r in conn.execute(q)})
    merged = (
        (_EDGES_MERGED if dialect == "postgresql" else _EDGES_MERGED_SQLITE) if in_sql else None
    )
    rows = _edge_rows(keyed, known, version)
    upsert_rows(conn, graph_edges, ["key"], rows, fixed=_EDGE_FIXED, merged=merged)


_Keyed = dict[str, tuple[tuple[str, str, int, str], _Edge]]  # the edges by their row's key


def _keyed(edges: dict[tuple[str, str, int, str], _Edge]) -> _Keyed:
    return {f"{k[0]}>{k[1]}|{k[2]}|{k[3]}": (k, e) for k, e in edges.items()}


def _edge_rows(keyed: _Keyed, known: dict[str, Any], version: int) -> list[dict[str, Any]]:
    """The rows of the edges ``keyed``, each merged here with its stored row in ``known`` if
    any."""
    rows = []
    # each time object written once: an all-time total shares its first and last with an hour's
    # row (every one stays alive in ``keyed`` meanwhile, so no id is reused)
    iso: dict[int, str] = {}
    for key in sorted(keyed):
        (src, dst, hour, encryption), e = keyed[key]
        old = known.get(key)
        assert e.first is not None and e.last is not None
        first, last = _iso_once(iso, e.first), _iso_once(iso, e.last)
        counts = [e.connections, e.violations, e.blocked, e.bytes]
        ports, protocols, dlp = set(e.ports), set(e.protocols), dict(e.dlp)
        if old is not None:
            first, last = min(first, old.first_seen), max(last, old.last_seen)
            counts = [
                counts[0] + old.connections,
                counts[1] + old.violations,
                counts[2] + old.blocked,
                counts[3] + old.bytes,
            ]
            ports |= _listed(old.ports)
            protocols |= _listed(old.protocols)
            for sensor, n in _counts(old.dlp).items():
                dlp[sensor] = dlp.get(sensor, 0) + n
        rows.append(
            {
                "key": key,
                "src": src,
                "dst": dst,
                "hour": hour,
                "encryption": encryption,
                "connections": counts[0],
                "violations": counts[1],
                "blocked": counts[2],
                "bytes": counts[3],
                "ports": ",".join(sorted(ports)[:MAX_LISTED]),
                "protocols": ",".join(sorted(protocols)[:MAX_LISTED]),
                "dlp": ",".join(f"{k}={v}" for k, v in sorted(dlp.items())),
                "first_seen": first,
                "last_seen": last,
                "version": version,
            }
        )
    return rows


def _iso_once(iso: dict[int, str], t: datetime) -> str:
    """``_iso(t)``, written once per time object of a batch (``iso`` keyed by its id: the caller
    keeps every object alive meanwhile, so no id is reused)."""
    text = iso.get(id(t))
    if text is None:
        text = iso[id(t)] = _iso(t)
    return text


_EDGE_COLUMNS = tuple(c.name for c in graph_edges.c)
_INT4 = 2**31
_INT8_MAX = 2**63 - 1


def _edge_copy_rows(keyed: _Keyed, version: int) -> list[list[Any]]:
    """:func:`_edge_rows` with nothing stored known, in the COPY's form: what
    ``CopyForm(graph_edges)`` makes of those rows, built without their dicts (a test holds the
    two equal). A row with a number beyond its column's range takes the reference, which
    refuses it as the server would."""
    rows = []
    iso: dict[int, str] = {}  # each time object written once (see _apply_edges)
    for key in sorted(keyed):
        (src, dst, hour, encryption), e = keyed[key]
        assert e.first is not None and e.last is not None
        first, last = _iso_once(iso, e.first), _iso_once(iso, e.last)
        dlp = e.dlp
        row = [
            key,
            src,
            dst,
            hour,
            encryption,
            e.connections,
            e.violations,
            e.blocked,
            e.bytes,
            ",".join(sorted(e.ports)[:MAX_LISTED]),
            ",".join(sorted(e.protocols)[:MAX_LISTED]),
            ",".join(f"{k}={v}" for k, v in sorted(dlp.items())) if dlp else "",
            first,
            last,
            version,
        ]
        if not (
            0 <= e.bytes <= _INT8_MAX
            and 0 <= e.connections < _INT4
            and 0 <= e.violations < _INT4
            and 0 <= e.blocked < _INT4
            and -_INT4 <= hour < _INT4
        ):
            row = CopyForm(graph_edges)(dict(zip(_EDGE_COLUMNS, row, strict=True)))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeRow:
    """One edge at the workload level and one encryption, its hours merged."""

    src: str
    dst: str
    encryption: str
    connections: int
    violations: int
    blocked: int
    bytes: int
    ports: set[str]
    protocols: set[str]
    dlp: dict[str, int]
    first_seen: str  # ISO, UTC
    last_seen: str


def edge_rows(
    conn: Connection,
    *,
    since: datetime | None,
    encryption: str | None = None,
    node: str | None = None,
) -> list[EdgeRow]:
    """The aggregate from the hour of ``since`` on, its hours merged by the database, or its
    all-time totals when ``since`` is None; of one ``encryption`` and to or from one ``node``
    when given."""
    c = graph_edges.c
    concat = func.string_agg if conn.dialect.name == "postgresql" else func.group_concat
    q = select(*_edge_columns()).where(c.hour == ALL_TIME)
    if since is not None:
        q = select(
            c.src,
            c.dst,
            c.encryption,
            func.sum(c.connections),
            func.sum(c.violations),
            func.sum(c.blocked),
            func.sum(c.bytes),
            concat(c.ports, ","),
            concat(c.protocols, ","),
            concat(c.dlp, ","),
            func.min(c.first_seen),
            func.max(c.last_seen),
        ).group_by(c.src, c.dst, c.encryption)
        q = q.where(c.hour >= hour_of(since))
    if node is not None:
        q = q.where(or_(c.src == node, c.dst == node))
    if encryption is not None:
        q = q.where(c.encryption == encryption)
    return [_edge_row(r) for r in conn.execute(q)]


def _edge_columns() -> tuple[Any, ...]:
    """The stored columns an EdgeRow is made of, in ``_edge_row``'s order."""
    c = graph_edges.c
    return (
        c.src,
        c.dst,
        c.encryption,
        c.connections,
        c.violations,
        c.blocked,
        c.bytes,
        c.ports,
        c.protocols,
        c.dlp,
        c.first_seen,
        c.last_seen,
    )


def _edge_row(r: Sequence[Any]) -> EdgeRow:
    return EdgeRow(
        src=r[0],
        dst=r[1],
        encryption=r[2],
        connections=int(r[3]),
        violations=int(r[4]),
        blocked=int(r[5]),
        bytes=int(r[6]),
        ports=_listed(r[7] or ""),
        protocols=_listed(r[8] or ""),
        dlp=_counts(r[9] or "") if r[9] else {},
        first_seen=r[10],
        last_seen=r[11],
    )


def hour_rows(conn: Connection, *, start: int, after: int) -> list[tuple[int, EdgeRow]]:
    """The aggregate's rows (each with its hour) written by merges of versions above ``after``:
    the all-time totals when ``start`` is ALL_TIME, else the hours from ``start`` on."""
    c = graph_edges.c
    q = select(*_edge_columns(), c.hour).where(c.version > after)
    if after < 0:  # everything: by the hours' index
        q = q.where(c.hour == ALL_TIME if start == ALL_TIME else c.hour >= start)
    # else by the versions' index (a few rows), their hours told apart here: a planner given
    # both conditions may well walk the hours' 20,000 rows instead
    return [
        (hour, _edge_row(r))
        for r in conn.execute(q)
        if (hour := int(r[12])) == start or (start != ALL_TIME and hour >= start)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRow:
    id: str
    kind: str
    namespace: str | None
    name: str
    labels: dict[str, str]
    address: str | None
    first_seen: datetime
    last_seen: datetime


def node_rows(
    conn: Connection, ids: Iterable[str] | None = None, *, after: int | None = None
) -> dict[str, NodeRow]:
    """Stored nodes (all, or those of ``ids``; those written by merges of versions above
    ``after``), by id."""
    q = select(graph_nodes)
    if after is not None:
        q = q.where(graph_nodes.c.version > after)
    wanted = None if ids is None else sorted(set(ids))
    found: dict[str, NodeRow] = {}
    for part in [None] if wanted is None else list(_chunks(wanted)):
        query = q if part is None else q.where(graph_nodes.c.id.in_(part))
        for r in conn.execute(query):
            found[r.id] = NodeRow(
                id=r.id,
                kind=r.kind,
                namespace=r.namespace,
                name=r.name,
                labels=r.labels or {},
                address=r.address,
                first_seen=_utc(r.first_seen),
                last_seen=_utc(r.last_seen),
            )
    return found
