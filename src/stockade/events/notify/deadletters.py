"""The dead-letter list: notifications no retry delivered, kept in the store (table
``notify_dead_letters``, Alembic branch ``notify``) until a redelivery succeeds or they are purged.

What is kept is the masked event, never the raw one. The list is bounded: past ``MAX_KEPT`` rows the
oldest are dropped, and :meth:`DeadLetters.add` says how many.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, Text, func, select

from stockade.store import Store
from stockade.store.tables import metadata

MAX_KEPT = 10_000

notify_dead_letters = Table(
    "notify_dead_letters",
    metadata,
    Column("delivery_id", String(32), primary_key=True),
    Column("target", String(200), nullable=False),
    Column("target_kind", String(40), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("event_kind", String(80), nullable=False),
    Column("event", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("last_failed_at", DateTime(timezone=True), nullable=False),
    Index("ix_notify_dead_letters_failed", "first_failed_at"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    delivery_id: str
    target: str
    target_kind: str
    event: dict[str, Any]
    attempts: int  # in all, over the first delivery and every redelivery
    error: str
    first_failed_at: datetime
    last_failed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "target": self.target,
            "target_kind": self.target_kind,
            "event_id": self.event.get("id"),
            "event_kind": self.event.get("kind"),
            "attempts": self.attempts,
            "error": self.error,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
        }


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


class DeadLetters:
    def __init__(self, store: Store, *, max_kept: int = MAX_KEPT) -> None:
        self.store = store
        self.max_kept = max_kept

    def add(
        self,
        *,
        delivery_id: str,
        target: str,
        target_kind: str,
        event: Mapping[str, Any],
        attempts: int,
        error: str,
    ) -> int:
        """Keep (or, for a failed redelivery, update) one dead letter; returns how many old ones
        were dropped to stay within ``max_kept``."""
        t = notify_dead_letters
        now = datetime.now(UTC)
        with self.store.begin() as conn:
            old = conn.execute(
                select(t.c.attempts).where(t.c.delivery_id == delivery_id)
            ).scalar_one_or_none()
            if old is not None:
                conn.execute(
                    t.update()
                    .where(t.c.delivery_id == delivery_id)
                    .values(attempts=old + attempts, error=error, last_failed_at=now)
                )
                return 0
            conn.execute(
                t.insert().values(
                    delivery_id=delivery_id,
                    target=target[:200],
                    target_kind=target_kind,
                    event_id=str(event.get("id", ""))[:32],
                    event_kind=str(event.get("kind", ""))[:80],
                    event=dict(event),
                    attempts=attempts,
                    error=error,
                    first_failed_at=now,
                    last_failed_at=now,
                )
            )
            count = conn.execute(select(func.count()).select_from(t)).scalar_one()
            excess = count - self.max_kept
            if excess <= 0:
                return 0
            oldest = select(t.c.delivery_id).order_by(t.c.first_failed_at).limit(excess)
            conn.execute(t.delete().where(t.c.delivery_id.in_(oldest.scalar_subquery())))
            return int(excess)

    def list(self, *, limit: int = 100, target: str | None = None) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters (of one target, if given)."""
        t = notify_dead_letters
        query = select(t).order_by(t.c.first_failed_at, t.c.delivery_id).limit(limit)
        if target is not None:
            query = query.where(t.c.target == target)
        with self.store.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            DeadLetter(
                delivery_id=r["delivery_id"],
                target=r["target"],
                target_kind=r["target_kind"],
                event=dict(r["event"]),
                attempts=r["attempts"],
                error=r["error"],
                first_failed_at=_aware(r["first_failed_at"]),
                last_failed_at=_aware(r["last_failed_at"]),
            )
            for r in rows
        ]

    def count(self) -> int:
        with self.store.connect() as conn:
            n = conn.execute(select(func.count()).select_from(notify_dead_letters)).scalar_one()
        return int(n)

    def remove(self, delivery_id: str) -> None:
        t = notify_dead_letters
        with self.store.begin() as conn:
            conn.execute(t.delete().where(t.c.delivery_id == delivery_id))
