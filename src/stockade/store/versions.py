"""Version counters of the configuration the agents follow (the quarantine set, the firewall
policy, the admission policy).

Every change of a kind raises one shared sequence (the row ``all``) and stamps the kind with the
new value, in the same transaction as the change itself. So one number says where an agent is:
``since=N`` is answered with every kind stamped after N, and a change is seen exactly once. The
``all`` row is locked by the update until the change commits, which keeps the stamps in commit
order on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, String, Table, func, select

from stockade.store.db import Store
from stockade.store.tables import metadata

SEQUENCE = "all"

config_versions = Table(
    "config_versions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
)


def bump(conn: Any, name: str) -> int:
    """Raise the sequence and stamp ``name`` with it, inside the caller's transaction; returns
    the new version."""
    table = config_versions
    done = conn.execute(
        table.update().where(table.c.name == SEQUENCE).values(version=table.c.version + 1)
    ).rowcount
    if not done:  # a store made before the sequence (the migration seeds it otherwise)
        start = conn.execute(select(func.max(table.c.version))).scalar() or 0
        conn.execute(table.insert().values(name=SEQUENCE, version=start + 1))
    version = int(conn.execute(select(table.c.version).where(table.c.name == SEQUENCE)).scalar())
    if not conn.execute(
        table.update().where(table.c.name == name).values(version=version)
    ).rowcount:
        conn.execute(table.insert().values(name=name, version=version))
    return version


def config_versions_of(store: Store) -> dict[str, int]:
    """Every kind's stamp, and ``all``, the newest (absent before the first change)."""
    with store.connect() as conn:
        rows = conn.execute(select(config_versions.c.name, config_versions.c.version))
        return {str(name): int(version) for name, version in rows}


def config_version(store: Store, name: str = SEQUENCE) -> int:
    """The stamp of ``name`` (0 before its first change); of every kind by default."""
    with store.connect() as conn:
        found = conn.execute(
            select(config_versions.c.version).where(config_versions.c.name == name)
        ).scalar()
    return int(found or 0)
