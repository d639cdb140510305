"""Writing and reading events and findings.

Every row goes through :func:`storable` on its way in: the masking gate (no full card number or SSN
is ever stored, whatever field it arrived in) and the characters a database refuses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.engine import Connection

from stockade.model import Event, Finding, ResourceRef, Severity
from stockade.model.redact import redact
from stockade.store.db import Store
from stockade.store.tables import events, findings

# Ids Stockade made itself (an event's link to its connection): never masked, only cleaned.
OWN_IDS = frozenset({"id", "connection"})
# NUL: PostgreSQL text cannot hold it. Lone surrogates (JSON "\\ud800", file names decoded with
# surrogateescape): UTF-8, so SQLite, cannot encode them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` masked by the gate (:func:`stockade.model.redact.redact`, sparing ``OWN_IDS``)
    and with every NUL and lone surrogate replaced by U+FFFD, through dicts, lists and tuples."""
    return _clean(redact(value, keep=OWN_IDS))


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _event_row(e: Event, stored_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = storable(
        {
            "kind": e.kind,
            "category": e.category,
            "severity": str(e.severity),
            "source": e.source,
            "message": e.message,
            "resource": e.resource.to_dict() if e.resource else None,
            "peer": e.peer.to_dict() if e.peer else None,
            "namespace": e.resource.namespace if e.resource else None,
            "data": e.to_dict()["data"],
            "action": e.action,
            "mode": e.mode,
            "node": e.node,
            "rule": e.rule,
        }
    )
    # SQLite keeps times without their zone: store every one in UTC so they compare.
    at = e.at.astimezone(UTC) if e.at.tzinfo else e.at
    return {
        "id": _clean(e.id),
        "at": at,
        "level": int(e.severity),
        "count": e.count,
        "stored_at": stored_at,
        **row,
    }


def record_events(store: Store, items: Iterable[Event]) -> int:
    now = datetime.now(UTC)
    rows = [_event_row(e, now) for e in items]
    if rows:
        with store.begin() as conn:
            conn.execute(insert(events), rows)
    return len(rows)


def _insert_new(dialect: str) -> Any:
    """``INSERT INTO events ... ON CONFLICT (id) DO NOTHING RETURNING id`` in ``dialect``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return (
            postgresql.insert(events)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(events.c.id, sort_by_parameter_order=True)
        )
    from sqlalchemy.dialects import sqlite

    return (
        sqlite.insert(events)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(events.c.id, sort_by_parameter_order=True)
    )


def record_new_events(
    store: Store,
    items: Iterable[Event],
    *,
    also: Callable[[Connection, list[str]], None] | None = None,
) -> list[str]:
    """Store the events whose id the store does not hold yet (idempotent ingestion: an agent that
    sends a batch again after a lost answer stores nothing twice); returns the ids stored.

    One ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` on SQLite and PostgreSQL alike, so
    concurrent replicas taking the same batch cannot both store it. ``also`` runs in the same
    transaction with the ids stored (what else the batch brings is stored with them, or not at all).
    """
    now = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for e in items:
        row = _event_row(e, now)
        rows.setdefault(row["id"], row)  # the same id twice in one batch is one event
    if not rows and also is None:
        return []
    statement = _insert_new(store.dialect)
    with store.begin() as conn:
        ids = [r[0] for r in conn.execute(statement, list(rows.values())).all()] if rows else []
        if also is not None:
            also(conn, ids)
        return ids


def record_findings(store: Store, items: Iterable[Finding], *, run_id: str | None = None) -> str:
    """Store one run's findings together; returns the run id."""
    run = run_id or uuid.uuid4().hex
    now = datetime.now(UTC)
    rows = [
        {
            "run_id": run,
            "at": now,
            "finding_id": _clean(f.id),
            **storable(
                {
                    "pillar": str(f.pillar),
                    "title": f.title,
                    "severity": str(f.severity),
                    "status": str(f.status),
                    "resource_kind": f.resource.kind,
                    "resource_name": f.resource.name,
                    "resource": f.resource.to_dict(),
                    "details": f.details.to_dict() if f.details else None,
                    "compliance": list(f.compliance),
                }
            ),
        }
        for f in items
    ]
    if rows:
        with store.begin() as conn:
            conn.execute(insert(findings), rows)
    return run


def list_events(
    store: Store,
    *,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> Sequence[Event]:
    q = select(events).order_by(events.c.at.desc()).limit(limit)
    if kind:
        q = q.where(events.c.kind.like(kind.replace("*", "%")))
    if since:
        q = q.where(events.c.at >= since)
    with store.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [_event(r) for r in rows]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _event(r: Any) -> Event:
    return Event(
        id=r["id"],
        kind=r["kind"],
        at=_utc(r["at"]),
        severity=Severity.parse(r["severity"]),
        source=r["source"],
        message=r["message"],
        resource=ResourceRef.from_dict(r["resource"]) if r["resource"] else None,
        peer=ResourceRef.from_dict(r["peer"]) if r["peer"] else None,
        data=r["data"] or {},
        action=r["action"],
        mode=r["mode"],
        node=r["node"],
        rule=r["rule"],
        count=r["count"] if r["count"] is not None else 1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """What the events API selects: every given condition must hold."""

    category: str | None = None
    kind: str | None = None  # a glob: ``dlp.*``
    min_level: Severity | None = None
    namespace: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, e: Event) -> bool:
        """The same selection in memory (the live stream applies it to new events)."""
        return (
            (not self.category or e.category == self.category)
            and (not self.kind or fnmatchcase(e.kind, self.kind))
            and (self.min_level is None or e.severity >= self.min_level)
            and (
                not self.namespace
                or (e.resource is not None and e.resource.namespace == self.namespace)
            )
            and (self.since is None or e.at >= self.since)
            and (self.until is None or e.at < self.until)
        )


def _filtered(q: Any, f: EventFilter) -> Any:
    if f.category:
        q = q.where(events.c.category == f.category)
    if f.kind:
        escaped = f.kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(events.c.kind.like(escaped.replace("*", "%"), escape="\\"))
    if f.min_level is not None:
        q = q.where(events.c.level >= int(f.min_level))
    if f.namespace:
        q = q.where(events.c.namespace == f.namespace)
    if f.since:
        q = q.where(events.c.at >= f.since.astimezone(UTC))
    if f.until:
        q = q.where(events.c.at < f.until.astimezone(UTC))
    return q


def events_page(
    store: Store,
    f: EventFilter,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> tuple[list[Event], tuple[datetime, str] | None]:
    """One page of events, newest first, strictly after the position ``before`` (the (at, id) of
    the last event of the previous page); returns the page and the position to continue from
    (None on the last page). Events stored meanwhile with a newer time never shift a page."""
    q = _filtered(select(events), f)
    if before is not None:
        at, ident = before
        at = at.astimezone(UTC)
        q = q.where(or_(events.c.at < at, and_(events.c.at == at, events.c.id < ident)))
    q = q.order_by(events.c.at.desc(), events.c.id.desc()).limit(limit + 1)
    with store.connect() as conn:
        rows = conn.execute(q).mappings().all()
    page = [_event(r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, ((page[-1].at, page[-1].id) if more and page else None)


def events_stored_since(
    store: Store, after: tuple[datetime, str], *, limit: int = 1000
) -> list[tuple[datetime, Event]]:
    """Events the store took after the position ``after`` (a ``stored_at`` time and an id; ``""``
    for every id at that time), oldest first, with the time the store took each (the live
    stream's source)."""
    at, ident = after
    at = at.astimezone(UTC)
    q = (
        select(events)
        .where(or_(events.c.stored_at > at, and_(events.c.stored_at == at, events.c.id > ident)))
        .order_by(events.c.stored_at, events.c.id)
        .limit(limit)
    )
    with store.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [(_utc(r["stored_at"]), _event(r)) for r in rows]


def event_counts(store: Store) -> list[tuple[str, int, int]]:
    """(category, level, number of events) for every pair present."""
    q = select(events.c.category, events.c.level, func.count()).group_by(
        events.c.category, events.c.level
    )
    with store.connect() as conn:
        return [(c or "", int(lv or 0), int(n)) for c, lv, n in conn.execute(q).all()]


def list_findings(
    store: Store, *, run_id: str | None = None, pillar: str | None = None
) -> list[dict[str, Any]]:
    q = select(findings).order_by(findings.c.pk)
    if run_id:
        q = q.where(findings.c.run_id == run_id)
    if pillar:
        q = q.where(findings.c.pillar == pillar)
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings().all()]
