"""Writing connection records and their events to the project store, with the connection graph's
aggregate (:mod:`stockade.network.graph`) kept up to date in the same transaction; and reading
the connection records agents send to the controller."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from stockade.model import Event
from stockade.network.connection import DEFAULT_POLICY, ConnectionRecord, events_for
from stockade.network.graph import Delta
from stockade.network.tables import connections
from stockade.network.tls_policy import TlsPolicy
from stockade.store.db import Store
from stockade.store.records import record_events
from stockade.store.rows import storable


def _row(rec: ConnectionRecord, data: dict[str, Any] | None = None) -> dict[str, Any]:
    # storable(): the SNI and the workload names are what the peers and the inventory said
    row: dict[str, Any] = storable(
        {
            "id": rec.id,
            "start": datetime.fromtimestamp(rec.start, UTC),
            "end": datetime.fromtimestamp(rec.end, UTC),
            "transport": rec.transport,
            "ip_version": rec.ip_version,
            "client_ip": rec.client_ip,
            "client_port": rec.client_port,
            "server_ip": rec.server_ip,
            "server_port": rec.server_port,
            "client_kind": rec.client.kind,
            "client_namespace": rec.client.namespace,
            "client_name": rec.client.name,
            "server_kind": rec.server.kind,
            "server_namespace": rec.server.namespace,
            "server_name": rec.server.name,
            "protocol": rec.protocol,
            "encrypted": rec.encrypted,
            "tls_version": rec.tls.version if rec.tls else None,
            "sni": rec.tls.sni if rec.tls else None,
            "bytes_to_server": rec.bytes_to_server,
            "bytes_to_client": rec.bytes_to_client,
            "packets_to_server": rec.packets_to_server,
            "packets_to_client": rec.packets_to_client,
            "state": rec.state,
            "dlp_hits": len(rec.hits),
        }
    )
    row["data"] = _data(rec.to_dict() if data is None else data)
    return row


# What no database text holds, as JSON text writes it: a NUL or a surrogate (a lone one from a
# peer's undecodable bytes; a valid pair, an emoji, also shows this way and takes the long road)
_UNSTORABLE_JSON = re.compile(r"\\u0000|\\ud[89abcdef]")


def _data(data: dict[str, Any]) -> dict[str, Any]:
    """A record's ``to_dict()`` as stored. Every string of it passed the masking gate already, so
    the full ``storable`` walk (the gate again, and the cleaning) only runs when the JSON text
    shows something to clean: one pass in C instead of a walk over every key and value."""
    if _UNSTORABLE_JSON.search(json.dumps(data)):
        return storable(data)  # type: ignore[no-any-return]
    return data


def write(
    store: Store,
    records: Sequence[ConnectionRecord],
    source: str = "sensor",
    policy: TlsPolicy = DEFAULT_POLICY,
    *,
    events: Sequence[Event] | None = None,
    data: Sequence[dict[str, Any] | None] | None = None,
) -> tuple[int, int]:
    """Store connection rows and their events (``events`` when the caller made them already,
    so they keep their ids; ``data``: the records' ``to_dict()`` when the caller has them);
    returns (connections, events) written."""
    if not records:
        return 0, 0
    if events is None:
        events = [e for r in records for e in events_for(r, source, policy)]
    rows = [_row(r, d) for r, d in zip(records, data or [None] * len(records), strict=True)]
    delta = Delta()
    for row in rows:
        delta.add_connection(row)
    for e in events:
        delta.add_event(e)
    with store.begin() as conn:
        conn.execute(insert(connections), rows)
        delta.apply(conn)
    return len(records), record_events(store, events)


def list_connections(store: Store, limit: int = 1000) -> list[dict[str, Any]]:
    q = select(connections).order_by(connections.c.start).limit(limit)
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings().all()]
