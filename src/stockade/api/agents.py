"""Agents seen by the controller: every batch (even an empty one) is a heartbeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from stockade.api.tables import agents
from stockade.events.ingest import AgentInfo, Batch, Stored, parse_batch, store_batch
from stockade.model import Event
from stockade.network import received
from stockade.store import Store
from stockade.store.bulk import copies, driver_execute
from stockade.store.jsontext import json_text
from stockade.store.rows import _storable_text

# An agent that has not reported for this long is counted down (agents report every few seconds).
UP_WITHIN = timedelta(seconds=90)


@dataclass(frozen=True, slots=True, kw_only=True)
class Taken:
    """A batch taken in: what it held, the events stored now, and its answer."""

    batch: Batch
    stored: Stored
    answer: dict[str, Any]

    def fresh(self) -> list[Event]:
        """The batch's events stored now (the live stream's and the response rules' input)."""
        new = set(self.stored.ids)
        return [e for e in self.batch.events if e.id in new]


def take_batch(store: Store, body: bytes, *, token_name: str) -> Taken:
    """What ``POST /api/v1/agents/events`` does with a request body before it answers (and what
    benchmarks/ingest.py measures): parse and validate it, store its new events and connection
    records in one transaction with the graph aggregate they change, and count the heartbeat.
    :class:`~stockade.model.InputError` when the body is not a batch."""
    batch = parse_batch(body)
    records = received.parse_records(batch.connections)
    new_records = 0

    def with_connections(conn: Connection, fresh: list[Event]) -> None:
        # the batch's connection records and what its new events say about them: stored in the
        # events' transaction, so a batch sent again adds nothing to the graph; the heartbeat
        # too (one commit a batch)
        nonlocal new_records
        new_records = received.store_new(conn, records, fresh)
        accepted = len({e.id for e in fresh})
        heartbeat_in(
            conn,
            batch.agent,
            token_name=token_name,
            accepted=accepted,
            duplicates=len(batch.events) - accepted,
        )

    stored = store_batch(store, batch.events, also=with_connections)
    answer: dict[str, Any] = {"accepted": stored.accepted, "duplicates": stored.duplicates}
    if records:
        answer["connections"] = {"accepted": new_records, "duplicates": len(records) - new_records}
    return Taken(batch=batch, stored=stored, answer=answer)


def heartbeat(
    store: Store, agent: AgentInfo, *, token_name: str, accepted: int, duplicates: int
) -> None:
    with store.begin() as conn:
        heartbeat_in(conn, agent, token_name=token_name, accepted=accepted, duplicates=duplicates)


def heartbeat_in(
    conn: Connection, agent: AgentInfo, *, token_name: str, accepted: int, duplicates: int
) -> None:
    """Count a batch of ``agent`` in ``conn``'s transaction: one upsert, so replicas taking the
    first batches of a new agent at once both count theirs. Its strings pass the masking gate
    (an agent may name itself with digits)."""
    now = datetime.now(UTC)
    values = {
        "name": _storable_text(agent.name),
        "node": _storable_text(agent.node),
        "version": _storable_text(agent.version),
        "capabilities": [_storable_text(c) for c in agent.capabilities],
        "token_name": _storable_text(token_name),
        "first_seen": now,
        "last_seen": now,
        "accepted": accepted,
        "duplicates": duplicates,
    }
    if copies(conn):  # the same upsert on the driver's cursor (see bulk.driver_execute)
        params = [values[c.name] for c in agents.c]
        params[_CAPABILITIES] = json_text(params[_CAPABILITIES])  # as the JSON column writes it
        driver_execute(conn, _HEARTBEAT_SQL, params)
        return
    conn.execute(_heartbeat_upsert(conn.dialect.name), values)


_REPLACED = ("node", "version", "capabilities", "token_name", "last_seen")
_HEARTBEAT_UPSERTS: dict[str, Any] = {}
_CAPABILITIES = [c.name for c in agents.c].index("capabilities")
# _heartbeat_upsert's statement on PostgreSQL, for the driver's cursor (every column in order)
_HEARTBEAT_SQL = (
    f"INSERT INTO {agents.name} ({', '.join(c.name for c in agents.c)}) VALUES "
    f"({', '.join('CAST(%s AS JSON)' if c.name == 'capabilities' else '%s' for c in agents.c)}) "
    "ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _REPLACED)
    + f", accepted = {agents.name}.accepted + EXCLUDED.accepted"
    + f", duplicates = {agents.name}.duplicates + EXCLUDED.duplicates"
)


def _heartbeat_upsert(dialect: str) -> Any:
    """The heartbeat's upsert of ``dialect``, built once (its values are parameters)."""
    found = _HEARTBEAT_UPSERTS.get(dialect)
    if found is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(agents)
        found = _HEARTBEAT_UPSERTS[dialect] = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                **{k: stmt.excluded[k] for k in _REPLACED},
                "accepted": agents.c.accepted + stmt.excluded.accepted,
                "duplicates": agents.c.duplicates + stmt.excluded.duplicates,
            },
        )
    return found


def _iso(t: datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def list_agents(store: Store) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    with store.connect() as conn:
        rows = conn.execute(select(agents).order_by(agents.c.name)).mappings().all()
    out = []
    for r in rows:
        seen = r["last_seen"] if r["last_seen"].tzinfo else r["last_seen"].replace(tzinfo=UTC)
        out.append(
            {
                "name": r["name"],
                "node": r["node"],
                "version": r["version"],
                "capabilities": list(r["capabilities"]),
                "token": r["token_name"],
                "first_seen": _iso(r["first_seen"]),
                "last_seen": _iso(seen),
                "up": now - seen <= UP_WITHIN,
                "accepted": int(r["accepted"]),
                "duplicates": int(r["duplicates"]),
            }
        )
    return out


def agents_up(store: Store) -> tuple[int, int]:
    """(agents up, agents known)."""
    since = datetime.now(UTC) - UP_WITHIN
    with store.connect() as conn:
        known = conn.execute(select(func.count()).select_from(agents)).scalar_one()
        up = conn.execute(
            select(func.count()).select_from(agents).where(agents.c.last_seen >= since)
        ).scalar_one()
    return int(up), int(known)
