"""Connection records as agents send them to the controller (``ConnectionRecord.to_dict()`` in
the ``connections`` of a batch): validated, masked and stored once by their id, each stored one
added to the connection graph's aggregate in the same transaction.

Everything in a record is what the peers and the agent said: each field is checked for its type
and bound, and the whole record passes the masking gate before it is stored.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy.engine import Connection

from stockade.model import Event, InputError
from stockade.model.redact import redact_text
from stockade.network.graph import Delta
from stockade.network.tables import connections
from stockade.store.rows import storable

MAX_RECORD_BYTES = 64 * 1024
MAX_BYTES = 2**62
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_SLUG_RE = re.compile(r"[a-z][a-z0-9_.-]{0,39}\Z")
_ENDPOINT_KEYS = frozenset({"ip", "port", "kind", "name", "namespace", "digest", "labels"})


def _fail(where: str, problem: str) -> NoReturn:
    raise InputError(f"{where}: {problem}")


def _str(doc: dict[str, Any], key: str, limit: int, *, optional: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        _fail(key, f"expected a string of at most {limit} characters")
    return value


def _int(doc: dict[str, Any], key: str, high: int) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        _fail(key, f"expected a whole number from 0 to {high}")
    return value


def _time(doc: dict[str, Any], key: str) -> datetime:
    text = _str(doc, key, 64)
    assert text is not None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _fail(key, "expected an ISO 8601 time")
    if at.tzinfo is None:
        _fail(key, "the time has no zone")
    return at.astimezone(UTC)


def _endpoint(doc: dict[str, Any], key: str) -> dict[str, Any]:
    ep = doc.get(key)
    if not isinstance(ep, dict):
        _fail(key, "expected an object")
    unknown = set(ep) - _ENDPOINT_KEYS
    if unknown:
        _fail(key, f"unknown field {sorted(unknown)[0]!r}")
    ip = str(_str(ep, "ip", 64))
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        _fail(f"{key}.ip", "not an IP address")
    kind = _str(ep, "kind", 40)
    if not _SLUG_RE.match(kind or ""):
        _fail(f"{key}.kind", "expected a slug")
    labels = ep.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > 64:
        _fail(f"{key}.labels", "expected an object of at most 64 labels")
    for k, v in labels.items():
        if not isinstance(v, str) or len(k) > 253 or len(v) > 1024:
            _fail(f"{key}.labels", "expected short strings")
    return {
        "ip": ip,
        "port": _int(ep, "port", 65535),
        "kind": kind,
        "name": _str(ep, "name", 253),
        "namespace": _str(ep, "namespace", 253, optional=True),
    }


def parse_record(doc: Any) -> dict[str, Any]:
    """A ``network_connections`` row (masked) from one record an agent sent; :class:`InputError`
    (one line, naming the field) when it is not one."""
    if not isinstance(doc, dict):
        _fail("record", "expected an object")
    try:
        size = len(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError):
        _fail("record", "not plain JSON")
    if size > MAX_RECORD_BYTES:
        _fail("record", f"larger than {MAX_RECORD_BYTES} bytes")
    ident = doc.get("id")
    if not isinstance(ident, str) or not _ID_RE.match(ident):
        _fail("id", "expected up to 64 letters, digits, '_', '.', ':' or '-'")
    ident = redact_text(ident)  # ids are spared by the gate; one of digits is masked the same way
    doc = {**doc, "id": ident}
    client, server = _endpoint(doc, "client"), _endpoint(doc, "server")
    transport = _str(doc, "transport", 8)
    if transport not in ("tcp", "udp"):
        _fail("transport", "expected tcp or udp")
    version = doc.get("ip_version")
    if version not in (4, 6):
        _fail("ip_version", "expected 4 or 6")
    protocol = _str(doc, "protocol", 40)
    if not _SLUG_RE.match(protocol or ""):
        _fail("protocol", "expected a slug like proto.http")
    encrypted = doc.get("encrypted")
    if not isinstance(encrypted, bool):
        _fail("encrypted", "expected true or false")
    tls = doc.get("tls")
    if tls is not None and not isinstance(tls, dict):
        _fail("tls", "expected an object or null")
    tls = tls or {}
    counts = {}
    for key in ("bytes", "packets"):
        pair = doc.get(key)
        if not isinstance(pair, dict):
            _fail(key, "expected {to_server, to_client}")
        counts[key] = (_int(pair, "to_server", MAX_BYTES), _int(pair, "to_client", MAX_BYTES))
    dlp = doc.get("dlp") or []
    if not isinstance(dlp, list):
        _fail("dlp", "expected a list")
    start, end = _time(doc, "start"), _time(doc, "end")
    row: dict[str, Any] = storable(
        {
            "id": ident,
            "start": start,
            "end": max(start, end),
            "transport": transport,
            "ip_version": version,
            "client_ip": client["ip"],
            "client_port": client["port"],
            "server_ip": server["ip"],
            "server_port": server["port"],
            "client_kind": client["kind"],
            "client_namespace": client["namespace"],
            "client_name": client["name"],
            "server_kind": server["kind"],
            "server_namespace": server["namespace"],
            "server_name": server["name"],
            "protocol": protocol,
            "encrypted": encrypted,
            "tls_version": _str(tls, "version", 16, optional=True),
            "sni": _str(tls, "sni", 1024, optional=True),
            "bytes_to_server": counts["bytes"][0],
            "bytes_to_client": counts["bytes"][1],
            "packets_to_server": counts["packets"][0],
            "packets_to_client": counts["packets"][1],
            "state": _str(doc, "state", 16),
            "dlp_hits": len(dlp),
            "data": doc,
        }
    )
    return row


def parse_records(items: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for i, doc in enumerate(items):
        try:
            out.append(parse_record(doc))
        except InputError as exc:
            raise InputError(f"connections[{i}] {exc}") from None
    return out


def _insert_new(dialect: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(connections)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(connections.c.id, sort_by_parameter_order=True)
    )


def store_new(conn: Connection, rows: Sequence[dict[str, Any]], events: Sequence[Event]) -> int:
    """Inside the caller's transaction: store the connections not stored yet and add them, and
    ``events`` (the batch's events stored now), to the graph; returns how many were new."""
    unique = {r["id"]: r for r in rows}
    stored: set[str] = set()
    if unique:
        result = conn.execute(_insert_new(conn.dialect.name), list(unique.values()))
        stored = {r[0] for r in result.all()}
    delta = Delta()
    for ident in stored:
        delta.add_connection(unique[ident])
    for e in events:
        delta.add_event(e)
    delta.apply(conn)
    return len(stored)
