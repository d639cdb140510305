"""Packet capture requests kept by the controller, and the masked pcaps agents upload for them.

A request (made through the API or by a response rule's ``capture`` action) is ``requested``; the
agents that can capture follow the pending requests by version (:func:`pending`); the agent whose
node runs the workload claims one (``running``: only one agent can), captures with the masked
capture of :mod:`stockade.network.forensics` and uploads the pcap (``done``) or says why it could
not (``failed``). The controller masks every upload again, in memory (:func:`complete`), before the
row keeps it: no unmasked byte is written by the controller, even from an agent that did not mask.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import desc, select, update

from stockade.api.tables import captures
from stockade.model import ConfigError, Event, ResourceRef, Severity, StockadeError
from stockade.model.redact import redact_text
from stockade.network.capture.bpf import Filter
from stockade.store import Store
from stockade.store.records import record_events
from stockade.store.versions import bump, config_version

VERSION_NAME = "captures"
STATES = ("requested", "running", "done", "failed")
MAX_LISTED = 1000
_SUMMARY = [c for c in captures.c if c.name != "pcap"]


def compile_filter(text: str | None) -> None:
    """A UsageError (one line, 400 through the API) when libpcap cannot compile ``text``."""
    if text:
        Filter(text, linktype=1).close()


def check_rule_filters(rules: Any) -> None:
    """Compile the filter of every rule's ``capture`` settings: a ConfigError names the rule."""
    for rule in rules.rules:
        spec = rule.spec.capture
        if spec is not None and spec.filter:
            try:
                compile_filter(spec.filter)
            except StockadeError as exc:
                raise ConfigError(f"rule {rule.name!r}: capture.filter: {exc}") from None


def _bump(conn: Any) -> None:
    bump(conn, VERSION_NAME)


def request_capture(
    store: Store,
    *,
    workload: str,
    duration: float,
    max_bytes: int,
    bpf_filter: str | None,
    requested_by: str,
    reason: str,
) -> dict[str, Any]:
    """Record a capture request (its filter compiled first) and raise the pending version."""
    compile_filter(bpf_filter)
    now = datetime.now(UTC)
    row = {
        "id": uuid.uuid4().hex,
        "workload": workload,
        "duration": float(duration),
        "max_bytes": int(max_bytes),
        "filter": bpf_filter,
        "state": "requested",
        "requested_by": requested_by[:80],
        "reason": redact_text(reason)[:1000],
        "agent": None,
        "created_at": now,
        "updated_at": now,
        "size": 0,
        "packets": 0,
        "masked": 0,
        "report": {},
        "error": None,
        "pcap": None,
    }
    with store.begin() as conn:
        conn.execute(captures.insert(), [row])
        _bump(conn)
    return _summary(row)


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _summary(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "workload": r["workload"],
        "state": r["state"],
        "duration": r["duration"],
        "max_bytes": int(r["max_bytes"]),
        "filter": redact_text(r["filter"]) if r["filter"] else None,
        "requested_by": r["requested_by"],
        "reason": redact_text(r["reason"]),
        "agent": r["agent"],
        "created_at": _iso(r["created_at"]),
        "updated_at": _iso(r["updated_at"]),
        "size": int(r["size"]),
        "packets": int(r["packets"]),
        "masked": int(r["masked"]),
        "report": r["report"] or {},
        "error": redact_text(r["error"]) if r["error"] else None,
    }


def listing(store: Store, state: str | None = None) -> list[dict[str, Any]]:
    """The newest requests first (at most 1000), without their pcaps."""
    query = select(*_SUMMARY).order_by(desc(captures.c.created_at)).limit(MAX_LISTED)
    if state is not None:
        query = query.where(captures.c.state == state)
    with store.connect() as conn:
        return [_summary(r) for r in conn.execute(query).mappings()]


def find(store: Store, capture_id: str) -> dict[str, Any] | None:
    with store.connect() as conn:
        row = conn.execute(select(*_SUMMARY).where(captures.c.id == capture_id)).mappings().first()
    return _summary(row) if row is not None else None


def pcap_of(store: Store, capture_id: str) -> bytes | None:
    with store.connect() as conn:
        data = conn.execute(
            select(captures.c.pcap).where(captures.c.id == capture_id)
        ).scalar_one_or_none()
    return bytes(data) if data is not None else None


def pending(store: Store, since: int | None) -> dict[str, Any]:
    """What the capturing agents follow: the requests nobody claimed yet, with their version, or
    ``unchanged`` when the agent has version ``since`` already."""
    version = config_version(store, VERSION_NAME)  # first: a request made meanwhile is sent again
    if since == version:
        return {"version": version, "unchanged": True}
    query = (
        select(
            captures.c.id,
            captures.c.workload,
            captures.c.duration,
            captures.c.max_bytes,
            captures.c.filter,
        )
        .where(captures.c.state == "requested")
        .order_by(captures.c.created_at)
        .limit(MAX_LISTED)
    )
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {
        "version": version,
        "captures": [
            {
                "id": r["id"],
                "workload": r["workload"],
                "duration": r["duration"],
                "max_bytes": int(r["max_bytes"]),
                "filter": r["filter"],
            }
            for r in rows
        ],
    }


def _move(store: Store, capture_id: str, frm: str, runner: str | None, **values: Any) -> bool:
    """Change the row from state ``frm`` (run by ``runner``, when given) to ``values``."""
    where = (captures.c.id == capture_id) & (captures.c.state == frm)
    if runner is not None:
        where &= captures.c.agent == runner
    with store.begin() as conn:
        return bool(
            conn.execute(
                update(captures).where(where).values(updated_at=datetime.now(UTC), **values)
            ).rowcount
        )


def claim(store: Store, capture_id: str, agent: str) -> bool:
    """``requested`` -> ``running`` for ``agent``; False when another agent was first."""
    return _move(store, capture_id, "requested", None, state="running", agent=agent)


def fail(store: Store, capture_id: str, agent: str, error: str) -> Event | None:
    """The agent that runs the capture could not make it: the ``capture.failed`` event it
    records; None when ``agent`` does not run this capture."""
    ok = _move(
        store,
        capture_id,
        "running",
        agent,
        state="failed",
        error=redact_text(" ".join(error.split()))[:1000],
    )
    if not ok:
        return None
    row = find(store, capture_id)
    assert row is not None
    return _record(
        store,
        row,
        "capture.failed",
        f"capture {capture_id} of {row['workload']} failed on {agent}: {row['error']}",
        Severity.MEDIUM,
    )


def complete(
    store: Store, capture_id: str, agent: str, upload: bytes, agent_report: dict[str, Any]
) -> tuple[dict[str, Any], Event] | None:
    """Mask the uploaded pcap again in memory and keep it (``done``): the capture and its
    ``capture.completed`` event; None when ``agent`` does not run this capture. A PacketError
    (400) when the upload is not a capture."""
    # the masking of packets (DLP sensors, protocol parsers) loads with the first upload
    from stockade.network.forensics import mask_pcap_bytes

    row = find(store, capture_id)
    if row is None or row["state"] != "running" or row["agent"] != agent:
        return None
    masked_pcap, report = mask_pcap_bytes(upload, max_bytes=row["max_bytes"])
    masked = int(agent_report.get("masked", 0)) + report.total_masked
    values = {
        "state": "done",
        "pcap": masked_pcap,
        "size": len(masked_pcap),
        "packets": report.packets,
        "masked": masked,
        "report": {
            **agent_report,
            "masked_by_controller": report.total_masked,
            "controller_masked": report.masked,
        },
    }
    if not _move(store, capture_id, "running", agent, **values):
        return None
    done = find(store, capture_id)
    assert done is not None
    event = _record(
        store,
        done,
        "capture.completed",
        f"capture {capture_id} of {done['workload']}: "
        f"{done['packets']} packets, {done['size']} bytes, {masked} masked",
        Severity.LOW,
    )
    return done, event


def _record(store: Store, row: dict[str, Any], kind: str, message: str, level: Severity) -> Event:
    namespace, _, name = row["workload"].rpartition("/")
    event = Event(
        kind=kind,
        message=message,
        severity=level,
        source="controller",
        resource=ResourceRef(kind="pod", name=name, namespace=namespace or None),
        data={
            "capture": row["id"],
            "size": row["size"],
            "packets": row["packets"],
            "masked": row["masked"],
            "agent": row["agent"],
            **({"error": row["error"]} if row["error"] else {}),
        },
    )
    record_events(store, [event])
    return event
