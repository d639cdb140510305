"""The admission policy kept in the project store (one row per policy name)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, String, Table, Text, select

from stockade.store import Store
from stockade.store.tables import metadata
from stockade.store.versions import bump

admission_policies = Table(
    "admission_policies",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("yaml", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def save_policy(store: Store, name: str, text: str) -> None:
    """Store the policy text and raise the agents' ``admission`` version with it."""
    with store.begin() as conn:
        conn.execute(admission_policies.delete().where(admission_policies.c.name == name))
        conn.execute(
            admission_policies.insert().values(name=name, yaml=text, updated_at=datetime.now(UTC))
        )
        bump(conn, "admission")


def load_policy_text(store: Store, name: str = "default") -> str | None:
    with store.connect() as conn:
        return conn.execute(
            select(admission_policies.c.yaml).where(admission_policies.c.name == name)
        ).scalar()
