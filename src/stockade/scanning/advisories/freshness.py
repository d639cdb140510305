"""Is the advisory data good enough to answer "is this image vulnerable"?

A missing or empty store, or one built longer ago than the allowed age, raises StaleDataError:
a scanner must never report "no vulnerabilities" when it lacks the data to know.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stockade.model.duration import human
from stockade.model.errors import StaleDataError, StoreError
from stockade.store.db import Store

DEFAULT_MAX_AGE = timedelta(days=7)
_META = ("built_at", "generation")
_META_SQL = "SELECT key, value FROM adv_meta WHERE key IN ('built_at', 'generation')"
_SOURCES_SQL = "SELECT name FROM adv_sources ORDER BY id"
_ANY_SQL = "SELECT EXISTS (SELECT 1 FROM adv_vulnerabilities)"


@dataclass(frozen=True, slots=True, kw_only=True)
class DbStatus:
    """What a scan needs to know of the advisory data (``db_info`` has the counts too)."""

    built_at: datetime | None
    sources: tuple[str, ...]  # source names in import order
    empty: bool  # no record at all
    generation: str | None  # changes with every import or update (see store.write_batches)


def db_status(store: Store) -> DbStatus:
    """The advisory data's build time, sources and generation, and whether it holds anything:
    three small queries (no count over the tables), through sqlite3 on an SQLite store opened
    without SQLAlchemy."""
    conn = store.sqlite_connect()
    if conn is not None:
        try:
            meta = dict(conn.execute(_META_SQL).fetchall())
            sources = tuple(str(r[0]) for r in conn.execute(_SOURCES_SQL))
            empty = not conn.execute(_ANY_SQL).fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}", subject=store.safe_url) from exc
        finally:
            conn.close()
    else:
        from sqlalchemy import exists, select

        from stockade.scanning.advisory_tables import adv_meta, adv_sources, adv_vulnerabilities

        with store.connect() as sa_conn:
            meta = dict(
                sa_conn.execute(
                    select(adv_meta.c.key, adv_meta.c.value).where(adv_meta.c.key.in_(_META))
                ).all()
            )
            sources = tuple(
                str(r[0])
                for r in sa_conn.execute(select(adv_sources.c.name).order_by(adv_sources.c.id))
            )
            empty = not sa_conn.execute(select(exists().select_from(adv_vulnerabilities))).scalar()
    built = meta.get("built_at")
    parsed = datetime.fromisoformat(built) if built else None
    return DbStatus(
        built_at=parsed.replace(tzinfo=UTC) if parsed and parsed.tzinfo is None else parsed,
        sources=sources,
        empty=empty,
        generation=meta.get("generation"),
    )


def check_freshness(
    store: Store,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    allow_stale: bool = False,
    now: datetime | None = None,
) -> DbStatus:
    """The store's status; raises StaleDataError when it is empty or too old (unless allowed)."""
    info = db_status(store)
    if allow_stale:
        return info
    if info.built_at is None or info.empty:
        raise StaleDataError(
            "the advisory database is empty: run `stockade db import SRC` or `stockade db update` "
            "first (or pass --allow-stale-db to scan without vulnerability data)",
            subject=store.safe_url,
        )
    age = (now or datetime.now(UTC)) - info.built_at
    if age > max_age:
        raise StaleDataError(
            f"the advisory database was built {human(age)} ago, more than the allowed "
            f"{human(max_age)}: run `stockade db update` "
            "(or raise --max-db-age, or pass --allow-stale-db)",
            subject=store.safe_url,
        )
    return info
