"""Storing a batch of new events fast, exactly once per id.

PostgreSQL (psycopg 3): ``COPY`` the rows into a temporary table of the session, then one
``INSERT INTO events SELECT ... ON CONFLICT (id) DO NOTHING RETURNING id``: the server parses one
short statement a batch instead of one with a parameter per cell, and the conflict clause keeps
two replicas taking the same batch from both storing it. SQLite (and any other driver): one
``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` over every row (SQLAlchemy sends it as
multi-row ``VALUES``; the ids come back in no particular order, which nobody needs).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Connection
from sqlalchemy.exc import DBAPIError

from stockade.store.tables import events

_INCOMING = "stockade_events_incoming"
_COLUMNS = tuple(c.name for c in events.c)
_JSON_COLUMNS = frozenset(c.name for c in events.c if isinstance(c.type, JSON))


def insert_new_rows(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    """Insert the ``rows`` (events rows with distinct ids) whose id is not stored yet, in
    ``conn``'s transaction; returns the ids inserted."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return _copy_then_insert(conn, rows)
    return _insert_returning(conn, rows)


def _insert_returning(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(events).on_conflict_do_nothing(index_elements=["id"]).returning(events.c.id)
    return [r[0] for r in conn.execute(statement, rows).all()]


def _copy_then_insert(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    # Session-wide, emptied by every commit (and gone with a rollback of the transaction that made
    # it, hence asked for each time: a no-op once it exists). Rows left by an earlier call in the
    # same transaction would conflict, so no id is ever returned twice.
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} "
        "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    columns = ", ".join(_COLUMNS)
    _copy(conn, f"COPY {_INCOMING} ({columns}) FROM STDIN", rows)
    inserted = conn.exec_driver_sql(
        f"INSERT INTO events ({columns}) SELECT {columns} FROM {_INCOMING} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    return [r[0] for r in inserted.all()]


def _copy(conn: Connection, statement: str, rows: list[dict[str, Any]]) -> None:
    """COPY on the driver's own cursor, its errors raised as SQLAlchemy's (a lost server becomes
    the store's "database error" and the dead connection leaves the pool)."""
    import psycopg

    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[c]) if c in _JSON_COLUMNS and row[c] is not None else row[c]
                        for c in _COLUMNS
                    ]
                )
    except psycopg.Error as exc:
        if raw.closed:
            conn.invalidate(exc)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
