"""Writing and reading events and findings."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from stockade.model import Event, Finding, ResourceRef, Severity
from stockade.store.db import Store
from stockade.store.tables import events, findings


def record_events(store: Store, items: Iterable[Event]) -> int:
    rows = [
        {
            "id": e.id,
            "kind": e.kind,
            "at": e.at,
            "severity": str(e.severity),
            "source": e.source,
            "message": e.message,
            "resource": e.resource.to_dict() if e.resource else None,
            "peer": e.peer.to_dict() if e.peer else None,
            "data": e.to_dict()["data"],
        }
        for e in items
    ]
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
            "finding_id": f.id,
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
