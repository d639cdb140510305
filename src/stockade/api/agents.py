"""Agents seen by the controller: every batch (even an empty one) is a heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from stockade.api.tables import agents
from stockade.events.ingest import AgentInfo
from stockade.store import Store

# An agent that has not reported for this long is counted down (agents report every few seconds).
UP_WITHIN = timedelta(seconds=90)


def heartbeat(
    store: Store, agent: AgentInfo, *, token_name: str, accepted: int, duplicates: int
) -> None:
    now = datetime.now(UTC)
    values = {
        "node": agent.node,
        "version": agent.version,
        "capabilities": list(agent.capabilities),
        "token_name": token_name,
        "last_seen": now,
    }
    counters = {
        "accepted": agents.c.accepted + accepted,
        "duplicates": agents.c.duplicates + duplicates,
    }
    where = agents.c.name == agent.name
    with store.begin() as conn:
        if conn.execute(update(agents).where(where).values(**values, **counters)).rowcount:
            return
    try:
        with store.begin() as conn:
            conn.execute(
                agents.insert(),
                [
                    {
                        "name": agent.name,
                        "first_seen": now,
                        "accepted": accepted,
                        "duplicates": duplicates,
                        **values,
                    }
                ],
            )
    except IntegrityError:  # another replica inserted it meanwhile
        with store.begin() as conn:
            conn.execute(update(agents).where(where).values(**values, **counters))


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
