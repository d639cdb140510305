"""Writing and reading events and findings.

Every row goes through :func:`storable` on its way in: the masking gate (no full card number or SSN
is ever stored, whatever field it arrived in) and the characters a database refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import and_, func, insert, literal_column, or_, select, text, union_all
from sqlalchemy.engine import Connection

from stockade.model import Event, Finding, ResourceRef, Severity
from stockade.model.finding import plain
from stockade.model.jsonvalue import orjson, plain_json
from stockade.model.redact import json_passes
from stockade.store.bulk import (
    CopyForm,
    copies,
    driver_execute,
    insert_new_copy_rows,
    insert_new_rows,
)
from stockade.store.db import Store
from stockade.store.jsontext import json_text
from stockade.store.rows import (  # noqa: F401 (OWN_IDS, storable, finding_rows: used from here)
    _PASSED,
    OWN_IDS,
    _clean,
    _optional_text,
    _storable_text,
    finding_rows,
    storable,
)
from stockade.store.tables import events, findings

# Resources whose every string passed the gate unchanged, with the dict stored for them (an
# agent's events name the same workloads again and again). Only those: nothing masked is kept, so
# nothing sensitive; the rows share the dict and nobody changes a row. Bounded: emptied when full.
_CLEAN_REFS: dict[ResourceRef, dict[str, Any]] = {}
_CLEAN_REFS_MAX = 8192


def stored_ref(ref: ResourceRef) -> dict[str, Any]:
    """``ref.to_dict()`` through the gate, as an event's row stores it (shared by the rows that
    name a resource that passed unchanged: never change it)."""
    known = _CLEAN_REFS.get(ref)
    if known is not None:
        return known
    plain_ref = ref.to_dict()
    masked: dict[str, Any] = storable(plain_ref)
    if masked == plain_ref:
        if len(_CLEAN_REFS) >= _CLEAN_REFS_MAX:
            _CLEAN_REFS.clear()
        _CLEAN_REFS[ref] = masked
    return masked


_SEVERITY_TEXT = {s: str(s) for s in Severity}  # str() of an IntEnum member is a Python call


def _event_row(e: Event, stored_at: datetime) -> dict[str, Any]:
    """The row of ``e``: every string through the gate (as :func:`storable` would take the whole
    row, field by field so nothing is built twice)."""
    resource = stored_ref(e.resource) if e.resource else None
    # SQLite keeps times without their zone: store every one in UTC so they compare.
    at = e.at.astimezone(UTC) if e.at.tzinfo else e.at
    severity = e.severity
    return {
        "id": _clean(e.id),
        "at": at,
        "level": int(e.severity),
        "count": e.count,
        "stored_at": stored_at,
        "kind": _storable_text(e.kind),
        "category": _storable_text(e.category),
        "severity": _storable_text(
            _SEVERITY_TEXT[severity] if type(severity) is Severity else str(severity)
        ),
        "source": _storable_text(e.source),
        "message": _storable_text(e.message),
        "resource": resource,
        "peer": stored_ref(e.peer) if e.peer else None,
        "namespace": resource.get("namespace") if resource else None,
        # plain() on plain JSON (an agent's data) only copies it: the gate's walk copies it anyway
        "data": storable(e.data if plain_json(e.data) else plain(e.data)),
        "action": _optional_text(e.action),
        "mode": _optional_text(e.mode),
        "node": _optional_text(e.node),
        "rule": _optional_text(e.rule),
    }


# The COPY's form of an event's row, built from the event (what CopyForm makes of _event_row, a
# test holds them to it) in the columns' order: no dict a row, each value converted once.
_EVENT_COLUMNS = (
    "id", "kind", "at", "severity", "source", "message", "resource", "peer", "data",
    "category", "level", "namespace", "action", "mode", "node", "rule", "count", "stored_at",
)  # fmt: skip
if tuple(c.name for c in events.c) != _EVENT_COLUMNS:  # pragma: no cover - a new column
    raise RuntimeError("records._event_values: the events table's columns changed")
_LEVEL = {s: int(s) for s in Severity}
_INT4 = range(-(2**31), 2**31)
# id(ref) -> (ref, the JSON text of its stored form, its stored namespace), for resources whose
# every string passed the gate unchanged (as _CLEAN_REFS). The entry holds the ref, so its id is
# not reused while the entry lives. Bounded: emptied when full.
_REF_TEXTS: dict[int, tuple[ResourceRef, str, Any]] = {}


def _ref_text(ref: ResourceRef) -> tuple[ResourceRef, str, Any]:
    found = _REF_TEXTS.get(id(ref))
    if found is not None and found[0] is ref:
        return found
    stored = stored_ref(ref)
    entry = (ref, json_text(stored), stored.get("namespace"))
    if _CLEAN_REFS.get(ref) is stored:  # passed unchanged: nothing sensitive is kept
        if len(_REF_TEXTS) >= _CLEAN_REFS_MAX:
            _REF_TEXTS.clear()
        _REF_TEXTS[id(ref)] = entry
    return entry


def _data_text(data: Any) -> str | None:
    """The stored JSON text of an event's ``data`` when it is plain JSON whose every string passes
    the gate unchanged (decided on orjson's text at once: :func:`json_passes`), so the gate's
    walk and a second writing are left out; else None (the row's reference path decides)."""
    if orjson is None or type(data) is not dict:
        return None
    try:
        if not plain_json(data):
            return None
        text = orjson.dumps(data)
    except (TypeError, RecursionError):
        return None
    return text.decode() if json_passes(text) else None


def _event_values(e: Event, stored_at: datetime) -> list[Any]:
    """The row of ``e`` in the COPY's form (see :func:`stockade.store.bulk.insert_new_copy_rows`):
    equal to ``CopyForm(events)(_event_row(e, stored_at))``, built without the row's dict. An
    event of an unusual shape (a time not in UTC, a severity or count not of its type, data that
    is not plain JSON or holds a string the gate changes...) takes that reference path."""
    ident, at, severity, count, resource, peer = e.id, e.at, e.severity, e.count, e.resource, e.peer
    data = _data_text(e.data)
    if (
        data is None
        or type(ident) is not str
        or not ident.isascii()  # no lone surrogate
        or "\x00" in ident
        or type(at) is not datetime
        or at.tzinfo is not UTC
        or type(stored_at) is not datetime
        or stored_at.tzinfo is not UTC
        or type(severity) is not Severity
        or type(count) is not int
        or count not in _INT4
        or (resource is not None and type(resource) is not ResourceRef)
        or (peer is not None and type(peer) is not ResourceRef)
    ):
        return CopyForm(events)(_event_row(e, stored_at))
    r = _ref_text(resource) if resource is not None else None
    p = _ref_text(peer) if peer is not None else None
    # _storable_text's own first step inline (a string that passed before: most of them)
    passed, gate = _PASSED, _storable_text
    kind, source, message, category = e.kind, e.source, e.message, e.category
    severity_text = _SEVERITY_TEXT[severity]
    action, mode, node, rule = e.action, e.mode, e.node, e.rule
    return [
        ident,
        kind if kind in passed else gate(kind),
        at,
        severity_text if severity_text in passed else gate(severity_text),
        source if source in passed else gate(source),
        message if message in passed else gate(message),
        None if r is None else r[1],
        None if p is None else p[1],
        data,
        category if category in passed else gate(category),
        _LEVEL[severity],
        None if r is None else r[2],
        None if action is None else action if action in passed else gate(action),
        None if mode is None else mode if mode in passed else gate(mode),
        None if node is None else node if node in passed else gate(node),
        None if rule is None else rule if rule in passed else gate(rule),
        count,
        stored_at,
    ]


def _clean_id(ident: Any) -> Any:
    """``_clean(ident)`` without its regex for an id that needs none (an ASCII string without
    NUL: every id an agent's batch passes)."""
    if type(ident) is str and ident.isascii() and "\x00" not in ident:
        return ident
    return _clean(ident)


# PostgreSQL: told on commit of every transaction of events, so the leader replica's response
# rules follow what any replica (or command) stores at once (see stockade.api.leader).
_NOTIFY = "SELECT pg_notify('stockade_events', current_schema())"


def _notify(conn: Any, dialect: str) -> None:
    if copies(conn):
        driver_execute(conn, _NOTIFY)
    elif dialect == "postgresql":
        conn.execute(text(_NOTIFY))


def record_events(store: Store, items: Iterable[Event]) -> int:
    now = datetime.now(UTC)
    rows = [_event_row(e, now) for e in items]
    if rows:
        with store.begin() as conn:
            conn.execute(insert(events), rows)
            _notify(conn, store.dialect)
    return len(rows)


def record_new_events(
    store: Store,
    items: Iterable[Event],
    *,
    also: Callable[[Connection, list[str]], None] | None = None,
) -> list[str]:
    """Store the events whose id the store does not hold yet (idempotent ingestion: an agent that
    sends a batch again after a lost answer stores nothing twice); returns the ids stored.

    ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` on SQLite and PostgreSQL alike (fed
    by ``COPY`` on PostgreSQL, see :mod:`stockade.store.bulk`), so concurrent replicas taking the
    same batch cannot both store it. ``also`` runs in the same transaction with the ids stored
    (what else the batch brings is stored with them, or not at all).
    """
    now = datetime.now(UTC)
    chosen: dict[str, Event] = {}
    for e in items:
        chosen.setdefault(_clean_id(e.id), e)  # the same id twice in one batch is one event
    if not chosen and also is None:
        return []
    with store.begin() as conn:
        # each row built as the store takes it (on PostgreSQL the server stores the first while
        # the last are built), in the COPY's own form there
        if not chosen:
            stored = []
        elif copies(conn):
            stored = insert_new_copy_rows(conn, (_event_values(e, now) for e in chosen.values()))
        else:
            stored = insert_new_rows(conn, (_event_row(e, now) for e in chosen.values()))
        if also is not None:
            also(conn, stored)
        if stored:
            _notify(conn, store.dialect)
        return stored


def record_findings(store: Store, items: Iterable[Finding], *, run_id: str | None = None) -> str:
    """Store one run's findings together; returns the run id."""
    run = run_id or uuid.uuid4().hex
    rows = finding_rows(run, datetime.now(UTC), (f.to_dict() for f in items))
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


def _filtered(q: Any, f: EventFilter, *, level: int | None = None) -> Any:
    """``q`` with ``f``'s conditions; ``level``: exactly that level instead of ``f.min_level``."""
    if f.category:
        q = q.where(events.c.category == f.category)
    if f.kind:
        if "*" not in f.kind:
            q = q.where(events.c.kind == f.kind)
        else:
            escaped = f.kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(events.c.kind.like(escaped.replace("*", "%"), escape="\\"))
            fixed = f.kind.partition("*")[0]
            if "." in fixed and not f.category:
                # ``scan.*`` can only match kinds of category ``scan``: say so, and its index
                # serves the glob in time order
                q = q.where(events.c.category == fixed.partition(".")[0])
    if level is not None:
        q = q.where(events.c.level == level)
    elif f.min_level is not None:
        q = q.where(events.c.level >= int(f.min_level))
    if f.namespace:
        q = q.where(events.c.namespace == f.namespace)
    if f.since:
        q = q.where(events.c.at >= f.since.astimezone(UTC))
    if f.until:
        q = q.where(events.c.at < f.until.astimezone(UTC))
    return q


def _newest_first(q: Any, before: tuple[datetime, str] | None, limit: int) -> Any:
    if before is not None:
        at, ident = before
        at = at.astimezone(UTC)
        # ``at <= x`` first: a range both databases read from an (..., at, id) index
        q = q.where(events.c.at <= at, or_(events.c.at < at, events.c.id < ident))
    return q.order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)


def _page_query(f: EventFilter, before: tuple[datetime, str] | None, limit: int) -> Any:
    """The events of ``f`` newest first after ``before``. A minimum level is a range of values:
    read as one (..., level, at, id) index range per value, each newest first, merged."""
    if f.min_level is None:
        return _newest_first(_filtered(select(events), f), before, limit)
    levels = range(int(f.min_level), int(max(Severity)) + 1)
    ranges = [
        select(_newest_first(_filtered(select(events), f, level=lv), before, limit).subquery())
        for lv in levels
    ]
    merged = union_all(*ranges).subquery() if len(ranges) > 1 else ranges[0].subquery()
    return select(merged).order_by(merged.c.at.desc(), merged.c.id.desc()).limit(limit)


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
    with store.connect() as conn:
        rows = conn.execute(_page_query(f, before, limit + 1)).mappings().all()
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


def _committed_after(columns: Sequence[Any], limit: int) -> Any:
    """The events after a position ``(:tx, :seq)`` in commit order, of transactions older than
    every one still running (see :func:`events_committed_after`), as these columns."""
    return (
        select(*columns, literal_column("tx"), literal_column("seq"))
        .where(
            text(
                "tx IS NOT NULL AND (tx, seq) > (:tx, :seq) "
                "AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            )
        )
        .order_by(literal_column("tx"), literal_column("seq"))
        .limit(limit)
    )


def events_committed_after(
    store: Store, after: tuple[int, int], *, limit: int = 200
) -> list[tuple[tuple[int, int], Event]]:
    """PostgreSQL: events after the position ``after`` in commit order, oldest first, each with
    its position (``tx``, ``seq``: the inserting transaction and a sequence; migration
    leader_0001). Only transactions older than every one still running are read, so no event can
    later appear before a position returned: following these positions sees every event once."""
    q = _committed_after([events], limit)
    with store.connect() as conn:
        rows = conn.execute(q, {"tx": after[0], "seq": after[1]}).mappings().all()
    return [((int(r["tx"]), int(r["seq"])), _event(r)) for r in rows]


def event_heads_committed_after(
    store: Store, after: tuple[int, int], *, limit: int = 200
) -> list[tuple[tuple[int, int], str, str, str]]:
    """PostgreSQL: :func:`events_committed_after`'s events by their heads only (position, id,
    kind, severity as stored: no JSON decoded, no message read), for a reader that wants a few
    of them; :func:`events_by_id` reads those in full."""
    q = _committed_after([events.c.id, events.c.kind, events.c.severity], limit)
    with store.connect() as conn:
        rows = conn.execute(q, {"tx": after[0], "seq": after[1]}).all()
    return [((int(r[3]), int(r[4])), r[0], r[1], r[2]) for r in rows]


def events_by_id(store: Store, ids: Sequence[str]) -> dict[str, Event]:
    """The stored events of ``ids`` (those the store holds), by id."""
    found: dict[str, Event] = {}
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            q = select(events).where(events.c.id.in_(ids[start : start + 500]))
            found.update((r["id"], _event(r)) for r in conn.execute(q).mappings())
    return found


def events_held_back(store: Store, after: tuple[int, int]) -> bool:
    """PostgreSQL: whether committed events after ``after`` wait behind a transaction still
    running somewhere in the cluster (:func:`events_committed_after` does not read them yet).
    That transaction's end may NOTIFY nobody (it need not store events), so a follower that
    sees this looks again on its own."""
    q = text(
        "SELECT EXISTS (SELECT 1 FROM events WHERE tx IS NOT NULL AND (tx, seq) > (:tx, :seq) "
        "AND tx >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"
    )
    with store.connect() as conn:
        return bool(conn.execute(q, {"tx": after[0], "seq": after[1]}).scalar_one())


def oldest_open_transaction(store: Store) -> str | None:
    """PostgreSQL: the oldest transaction holding a transaction id in the cluster, described in
    one line (process id, database, application, age), or None."""
    q = text(
        "SELECT pid, datname, application_name, now() - xact_start AS age FROM pg_stat_activity "
        "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
        "ORDER BY age(backend_xid) DESC LIMIT 1"
    )
    with store.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    age = row.age.total_seconds() if row.age is not None else 0.0
    return f"pid {row.pid}, database {row.datname}, application {row.application_name!r}, open {age:.0f} s"


def response_triggers_after(store: Store, after: tuple[int, int]) -> set[str]:
    """PostgreSQL: the ids of the events that ``response.*`` events stored after ``after`` (in
    commit order) answer: what a leader did before its cursor moved."""
    q = select(events.c.data).where(
        events.c.kind.like("response.%"), text("tx IS NOT NULL AND (tx, seq) > (:tx, :seq)")
    )
    with store.connect() as conn:
        rows = conn.execute(q, {"tx": after[0], "seq": after[1]}).scalars().all()
    out = set()
    for data in rows:
        trigger = data.get("trigger") if isinstance(data, dict) else None
        if isinstance(trigger, dict) and isinstance(trigger.get("id"), str):
            out.add(trigger["id"])
    return out


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
