"""Agents' event batches: the body of ``POST /api/v1/agents/events``, validated, and stored once.

The body is ``{"agent": {"name", "node", "version", "capabilities"}, "events": [Event.to_dict()],
"connections": [...]}`` with at most ``MAX_EVENTS`` events and ``MAX_EVENTS`` connection records
(optional; the network pillar reads them) in ``MAX_BODY_BYTES``. Storing is idempotent on the event id:
a batch sent again (the agent never saw the answer) stores nothing twice and counts duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from stockade.config import parse_json
from stockade.model import Event, InputError
from stockade.store import Store
from stockade.store.records import record_new_events

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_EVENTS = 1000
MAX_CAPABILITIES = 64
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,252}\Z")
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")
_CAPABILITY_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")
_SPARED = frozenset({"events"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    name: str
    node: str
    version: str
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    agent: AgentInfo
    events: list[Event]
    connections: list[Any] = field(default_factory=list)  # raw records, for the network pillar


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    accepted: int
    duplicates: int
    ids: list[str]  # the ids stored now (the live stream's and the responders' input)


def _field(obj: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise InputError(f"agent {key}: expected {pattern.pattern[:-2]!r}")
    return value


def parse_agent(value: Any) -> AgentInfo:
    if not isinstance(value, dict):
        raise InputError("agent: expected an object")
    unknown = set(value) - {"name", "node", "version", "capabilities"}
    if unknown:
        raise InputError(f"agent: unknown field {sorted(unknown)[0]!r}")
    caps = value.get("capabilities", [])
    if (
        not isinstance(caps, list)
        or len(caps) > MAX_CAPABILITIES
        or not all(isinstance(c, str) and _CAPABILITY_RE.match(c) for c in caps)
    ):
        raise InputError(
            f"agent capabilities: expected at most {MAX_CAPABILITIES} slugs like 'dlp' or 'firewall.nfqueue'"
        )
    return AgentInfo(
        name=_field(value, "name", _NAME_RE),
        node=_field(value, "node", _NAME_RE),
        version=_field(value, "version", _VERSION_RE),
        capabilities=tuple(sorted(set(caps))),
    )


def parse_batch(body: bytes) -> Batch:
    """A batch from the request body; :class:`InputError` (one line) when it is not one."""
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"the batch is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the batch is not UTF-8") from None
    # the events are not walked for their depth here: each is validated below, its resources flat
    # and its data no deeper than MAX_DATA_DEPTH (a walk of every event was a sixth of the parse)
    doc = parse_json(text, name="batch", error=InputError, max_bytes=MAX_BODY_BYTES, spared=_SPARED)
    if not isinstance(doc, dict) or set(doc) - {"agent", "events", "connections"}:
        raise InputError(
            'the batch must be an object with "agent" and "events" (and "connections") only'
        )
    items = doc.get("events")
    if not isinstance(items, list):
        raise InputError('batch "events": expected a list')
    if len(items) > MAX_EVENTS:
        raise InputError(f'batch "events": more than {MAX_EVENTS} events')
    records = doc.get("connections", [])
    if not isinstance(records, list):
        raise InputError('batch "connections": expected a list')
    if len(records) > MAX_EVENTS:
        raise InputError(f'batch "connections": more than {MAX_EVENTS} records')
    agent = parse_agent(doc.get("agent"))
    events = []
    for i, item in enumerate(items):
        try:
            events.append(Event.from_dict(item))
        except InputError as exc:
            raise InputError(f"events[{i}]: {exc}") from None
    return Batch(agent=agent, events=events, connections=records)


def store_batch(
    store: Store,
    events: list[Event],
    *,
    also: Callable[[Connection, list[Event]], None] | None = None,
) -> Stored:
    """Store the events the store does not hold yet; count the others as duplicates. ``also``
    stores what else the batch brings in the same transaction, given the events stored now."""

    def with_events(conn: Connection, ids: list[str]) -> None:
        if also is not None:
            new = set(ids)
            also(conn, [e for e in events if e.id in new])

    ids = record_new_events(store, events, also=with_events if also is not None else None)
    return Stored(accepted=len(ids), duplicates=len(events) - len(ids), ids=ids)
