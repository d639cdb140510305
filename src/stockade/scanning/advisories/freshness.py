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
# The build time and generation, and the markers an upgrade leaves for the first match
# (``store.ensure_spans``: whether it has work to do, without SQLAlchemy).
_META = ("built_at", "generation", "spans", "limits", "cvss", "reimport")
_META_SQL = f"SELECT key, value FROM adv_meta WHERE key IN {_META!r}"
_SOURCES_SQL = "SELECT name, reimport FROM adv_sources ORDER BY id"
_ANY_SQL = "SELECT EXISTS (SELECT 1 FROM adv_vulnerabilities)"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInfo:
    name: str
    kind: str
    imported_at: datetime
    records: int
    problems: int
    reimport: str | None = None  # why it must be imported again (see store.flag_reimports)


@dataclass(frozen=True, slots=True, kw_only=True)
class DbInfo:
    """What ``stockade db status`` shows: sources, record counts, build time."""

    built_at: datetime | None
    sources: tuple[SourceInfo, ...]
    by_ecosystem: tuple[tuple[str, int], ...]  # (ecosystem, affected-package rows)
    records: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DbStatus:
    """What a scan needs to know of the advisory data (``db_info`` has the counts too)."""

    built_at: datetime | None
    sources: tuple[str, ...]  # source names in import order
    empty: bool  # no record at all
    generation: str | None  # changes with every import or update (see store.write_batches)
    # (source name, why) of each source an earlier release imported that must be imported again
    reimport: tuple[tuple[str, str], ...] = ()
    upgrade_pending: bool = False  # an upgrade left work for store.ensure_spans


def db_status(store: Store) -> DbStatus:
    """The advisory data's build time, sources and generation, and whether it holds anything:
    three small queries (no count over the tables), through sqlite3 on an SQLite store opened
    without SQLAlchemy."""
    conn = store.sqlite_connect()
    if conn is not None:
        try:
            meta = dict(conn.execute(_META_SQL).fetchall())
            source_rows = [(str(r[0]), r[1]) for r in conn.execute(_SOURCES_SQL)]
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
            source_rows = [
                (str(r[0]), r[1])
                for r in sa_conn.execute(
                    select(adv_sources.c.name, adv_sources.c.reimport).order_by(adv_sources.c.id)
                )
            ]
            empty = not sa_conn.execute(select(exists().select_from(adv_vulnerabilities))).scalar()
    built = meta.get("built_at")
    parsed = datetime.fromisoformat(built) if built else None
    return DbStatus(
        built_at=parsed.replace(tzinfo=UTC) if parsed and parsed.tzinfo is None else parsed,
        sources=tuple(name for name, _why in source_rows),
        empty=empty,
        generation=meta.get("generation"),
        reimport=tuple((name, str(why)) for name, why in source_rows if why),
        upgrade_pending=bool(meta.keys() - {"built_at", "generation"}),
    )


_INFO_SQL = (
    "SELECT value FROM adv_meta WHERE key = 'built_at'",
    "SELECT name, kind, imported_at, records, problems, reimport FROM adv_sources ORDER BY id",
    "SELECT ecosystem, count(*) FROM adv_affected GROUP BY ecosystem ORDER BY ecosystem",
    "SELECT count(*) FROM adv_vulnerabilities",
)


def db_info(store: Store) -> DbInfo:
    """The advisory data's build time, sources and counts; through sqlite3 on an SQLite store
    opened without SQLAlchemy, like :func:`db_status`."""
    conn = store.sqlite_connect()
    if conn is not None:
        try:
            built_row = conn.execute(_INFO_SQL[0]).fetchone()
            rows = [
                (name, kind, datetime.fromisoformat(at), records, problems, why)
                for name, kind, at, records, problems, why in conn.execute(_INFO_SQL[1])
            ]
            counts = tuple((str(e), int(n)) for e, n in conn.execute(_INFO_SQL[2]))
            records = conn.execute(_INFO_SQL[3]).fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}", subject=store.safe_url) from exc
        finally:
            conn.close()
        built = built_row[0] if built_row else None
    else:
        from sqlalchemy import func, select

        from stockade.scanning.advisory_tables import (
            adv_affected,
            adv_meta,
            adv_sources,
            adv_vulnerabilities,
        )

        with store.connect() as sa_conn:
            built = sa_conn.execute(
                select(adv_meta.c.value).where(adv_meta.c.key == "built_at")
            ).scalar()
            rows = [
                (r.name, r.kind, r.imported_at, r.records, r.problems, r.reimport)
                for r in sa_conn.execute(select(adv_sources).order_by(adv_sources.c.id))
            ]
            counts = tuple(
                (r[0], r[1])
                for r in sa_conn.execute(
                    select(adv_affected.c.ecosystem, func.count())
                    .group_by(adv_affected.c.ecosystem)
                    .order_by(adv_affected.c.ecosystem)
                )
            )
            records = sa_conn.execute(
                select(func.count()).select_from(adv_vulnerabilities)
            ).scalar()
    return DbInfo(
        built_at=_utc(datetime.fromisoformat(built)) if built else None,
        sources=tuple(
            SourceInfo(name=n, kind=k, imported_at=_utc(at), records=r, problems=p, reimport=why)
            for n, k, at, r, p, why in rows
        ),
        by_ecosystem=counts,
        records=int(records or 0),
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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


def reimport_lines(reimport: tuple[tuple[str, str], ...]) -> list[str]:
    """What to tell the user of each source that must be imported again (see
    ``store.flag_reimports``)."""
    return [
        f"advisory source {name} must be imported again (`stockade db import {name}` or"
        f" `stockade db update`): {why}; until then its answers may be wrong"
        for name, why in reimport
    ]
