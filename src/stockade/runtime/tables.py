"""The controller's rows of the runtime pillar: the process profiles applied through its API (one
versioned document, as the firewall policy) and the profiles each agent learned and sent up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, select

from stockade.store import Store
from stockade.store.tables import metadata
from stockade.store.versions import bump

KIND = "runtime_profiles"  # the applied set's kind in the agents' configuration sequence
NAME = "default"

runtime_profiles = Table(
    "runtime_profiles",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("yaml", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

runtime_learned = Table(
    "runtime_learned",
    metadata,
    Column("agent", String(253), primary_key=True),
    Column("yaml", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def load_applied(store: Store) -> tuple[str, int] | None:
    """The applied profiles' canonical text and version (None before any apply)."""
    t = runtime_profiles
    with store.connect() as conn:
        row = conn.execute(select(t.c.yaml, t.c.version).where(t.c.name == NAME)).first()
    return (str(row[0]), int(row[1])) if row else None


def save_applied(store: Store, text: str) -> int:
    """Store the canonical text as the applied profiles and stamp the configuration sequence in
    the same transaction; returns the set's new version."""
    t = runtime_profiles
    with store.begin() as conn:
        old = conn.execute(select(t.c.version).where(t.c.name == NAME)).scalar()
        version = int(old or 0) + 1
        conn.execute(t.delete().where(t.c.name == NAME))
        conn.execute(
            t.insert().values(name=NAME, yaml=text, version=version, updated_at=datetime.now(UTC))
        )
        bump(conn, KIND)
    return version


def save_learned(store: Store, agent: str, text: str) -> None:
    """Keep an agent's newest learned profiles (canonical text)."""
    t = runtime_learned
    with store.begin() as conn:
        conn.execute(t.delete().where(t.c.agent == agent))
        conn.execute(t.insert().values(agent=agent, yaml=text, updated_at=datetime.now(UTC)))


def learned_rows(store: Store) -> list[tuple[str, str, datetime]]:
    """Every agent's learned profiles: (agent, canonical text, when received), by agent."""
    t = runtime_learned
    with store.connect() as conn:
        rows = conn.execute(select(t.c.agent, t.c.yaml, t.c.updated_at).order_by(t.c.agent))
        return [(str(a), str(y), at) for a, y, at in rows]
