"""Writing and reading events and findings.

Every row goes through :func:`storable` on its way in: the masking gate (no full card number or SSN
is ever stored, whatever field it arrived in) and the characters a database refuses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

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


def _event_row(e: Event) -> dict[str, Any]:
    row: dict[str, Any] = storable(
        {
            "kind": e.kind,
            "severity": str(e.severity),
            "source": e.source,
            "message": e.message,
            "resource": e.resource.to_dict() if e.resource else None,
            "peer": e.peer.to_dict() if e.peer else None,
            "data": e.to_dict()["data"],
        }
    )
    return {"id": _clean(e.id), "at": e.at, **row}


def record_events(store: Store, items: Iterable[Event]) -> int:
    rows = [_event_row(e) for e in items]
    if rows:
        with store.begin() as conn:
            conn.execute(insert(events), rows)
    return len(rows)


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


def _event(r: Any) -> Event:
    at = r["at"]
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Event(
        id=r["id"],
        kind=r["kind"],
        at=at,
        severity=Severity.parse(r["severity"]),
        source=r["source"],
        message=r["message"],
        resource=ResourceRef.from_dict(r["resource"]) if r["resource"] else None,
        peer=ResourceRef.from_dict(r["peer"]) if r["peer"] else None,
        data=r["data"] or {},
    )


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
