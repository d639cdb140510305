"""Storing a batch of new events fast, exactly once per id.

PostgreSQL (psycopg 3): ``COPY`` the rows straight into ``events`` under a savepoint: the
server parses no statement per row and fills the table's indexes while the rows are still being
sent. An id already stored (a batch sent again after a lost answer, or the same batch taken by
another replica: its COPY waits for that transaction, then fails on the unique index) fails the
COPY with a unique violation; the transaction then rolls back to the savepoint and takes the
conflict-checked path: ``COPY`` into a temporary table of the session, then one ``INSERT INTO
events SELECT ... ON CONFLICT (id) DO NOTHING RETURNING id``, so nothing is stored twice. SQLite: the transaction takes the
write lock first (``BEGIN IMMEDIATE``), so the ids found stored by one ``SELECT`` stay the only
ones stored until it commits, and the others go in by the driver's ``executemany`` (its C loop,
the rows converted once by the columns' own bind processors: no per-row statement building). Any
other driver: one ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id``.

:func:`upsert_rows` does the same for rows that replace the stored row of their key (the
connection graph's aggregate): ``COPY`` and one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
on PostgreSQL, where one statement a row (psycopg's ``executemany``) costs ten times as much;
the driver's ``executemany`` of one ``INSERT ... ON CONFLICT DO UPDATE`` on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, BigInteger, Connection, DateTime, Integer, SmallInteger, String, Table
from sqlalchemy.exc import DBAPIError, IntegrityError

from stockade.store.jsontext import json_text
from stockade.store.tables import events

_COLUMNS = tuple(c.name for c in events.c)


def _copies(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def merges_in_sql(conn: Connection) -> bool:
    """Whether :func:`upsert_rows` takes ``merged`` expressions on ``conn`` (PostgreSQL through
    COPY, SQLite through the standard library's driver)."""
    return _copies(conn) or _sqlite(conn)


def _sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite"


def copies(conn: Connection) -> bool:
    """Whether :func:`insert_new_rows` writes through ``COPY`` on ``conn`` (PostgreSQL through
    psycopg), so it takes rows in the ``COPY``'s own form (:func:`insert_new_copy_rows`)."""
    return _copies(conn)


def insert_new_rows(conn: Connection, rows: Iterable[dict[str, Any]]) -> list[str]:
    """Insert the ``rows`` (events rows with distinct ids) whose id is not stored yet, in
    ``conn``'s transaction; returns the ids inserted. ``rows`` may be built as they are taken
    (a generator): on PostgreSQL each is sent as soon as it is built, so the server stores the
    first rows of a batch while the last are still being built."""
    if _copies(conn):
        return _copy_new(conn, rows, ready=False)
    rows = list(rows)
    if _sqlite(conn):
        return _sqlite_insert_new(conn, rows)
    return _insert_returning(conn, rows)


def upsert_rows(
    conn: Connection,
    table: Table,
    keys: list[str],
    rows: list[Any],
    *,
    fixed: frozenset[str] = frozenset(),
    merged: Mapping[str, str] | None = None,
    ready: bool = False,
) -> None:
    """Write ``rows`` (every column of ``table``, distinct ``keys``) in ``conn``'s transaction,
    each replacing the stored row with the same ``keys``. The ``fixed`` columns are the keys'
    own (a value the key determines): written with a new row, never updated, so an update leaves
    their indexes alone (SQLite rewrites the entries of every index on a column it sets).

    ``merged``: SQL expressions for columns whose stored value is merged with the new one
    (``EXCLUDED.col`` is the new value, ``table.col`` the stored one) instead of replaced; only
    where :func:`merges_in_sql` holds (in the dialect of ``conn``).

    ``ready``: the rows are lists in the ``COPY``'s form already (what :class:`CopyForm` makes of
    a row's dict), only where :func:`copies` holds; else dicts."""
    if not rows:
        return
    if merged and not merges_in_sql(conn):
        raise ValueError("merged columns need PostgreSQL through psycopg or SQLite")
    if ready and not _copies(conn):
        raise ValueError("rows in the COPY's form need PostgreSQL through psycopg")
    kept = frozenset(keys) | fixed
    if _sqlite(conn):
        cols = [c.name for c in table.c]
        quoted = ", ".join(f'"{c}"' for c in cols)
        updates = ", ".join(
            f'"{c}" = {(merged or {}).get(c, f"excluded.{q}")}'
            for c, q in ((c, f'"{c}"') for c in cols)
            if c not in kept
        )
        conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' for _ in cols)}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
            _driver_rows(conn, table, rows),
        )
        return
    if not _copies(conn):
        conn.execute(_dialect_upsert(conn.dialect.name, table, keys, kept), rows)
        return
    incoming = _incoming_table(conn, table.name)
    columns = {c.name: f'"{c.name}"' for c in table.c}
    names = ", ".join(columns.values())
    _copy(conn, table, f"COPY {incoming} ({names}) FROM STDIN", rows, ready=ready)
    updates = ", ".join(
        f"{q} = {(merged or {}).get(c, f'EXCLUDED.{q}')}"
        for c, q in columns.items()
        if c not in kept
    )
    # the CTE empties the session's table as it reads it: a second call in the same transaction
    # starts from nothing
    driver_execute(
        conn,
        f"WITH incoming AS (DELETE FROM {incoming} RETURNING {names}) "
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM incoming "
        f"ON CONFLICT ({', '.join(columns[k] for k in keys)}) DO UPDATE SET {updates}",
    )


def _dialect_upsert(dialect: str, table: Table, keys: list[str], kept: frozenset[str]) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(table)
    columns = [c.name for c in table.columns if c.name not in kept]
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
    )


def _incoming_table(conn: Connection, name: str) -> str:
    """A temporary table of the session shaped like ``name``, emptied by every commit (and gone
    with a rollback of the transaction that made it, hence asked for each time: a no-op once it
    exists)."""
    incoming = f"stockade_incoming_{name}"
    driver_execute(
        conn,
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} "
        f"(LIKE {name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    )
    return incoming


def driver_execute(
    conn: Connection, statement: str, params: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    """Run ``statement`` (psycopg's ``%s`` placeholders for ``params``) in ``conn``'s transaction
    on the driver's own cursor, where :func:`copies` holds; returns its rows (none for a
    statement without). SQLAlchemy's work around a statement (its execution context, result and
    events) cost this process 190 to 270 us a statement, about a dozen a batch of events; the
    driver's cursor a fraction of it. Errors are raised as SQLAlchemy's, as :func:`_copy` raises
    them (a lost server leaves the pool)."""
    import psycopg

    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []
    except psycopg.Error as exc:
        if raw.closed:
            conn.invalidate(exc)
        raise DBAPIError.instance(statement, params, exc, psycopg.Error) from exc


def _driver_rows(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """``rows`` as the driver takes them: a tuple of every column of ``table`` in order, each value
    through its column type's bind processor (what SQLAlchemy's own statements would send)."""
    get, processors = _processors(conn, table)
    # The rows of a batch share values of their JSON and time columns (the stored form of a
    # resource they name, see records.stored_ref; the time they were stored): each object is
    # converted once a column. Every row stays alive in ``rows`` while this runs, so no id is
    # reused.
    converting: list[tuple[int, Callable[[Any], Any], dict[int, Any] | None]] = [
        (i, process, {} if shared else None) for i, process, shared in processors
    ]
    out = []
    for row in rows:
        values = list(get(row))
        for i, process, done in converting:
            value = values[i]
            if done is None:
                values[i] = process(value)
                continue
            found = done.get(id(value), _MISSING)
            if found is _MISSING:
                found = done[id(value)] = process(value)
            values[i] = found
        out.append(tuple(values))
    return out


_MISSING = object()
_Processors = tuple[Callable[[dict[str, Any]], Any], list[tuple[int, Callable[[Any], Any], bool]]]
_PROCESSORS: dict[tuple[str, str], _Processors] = {}


def _processors(conn: Connection, table: Table) -> _Processors:
    """What reads a row's values in the order of ``table``'s columns (a tuple), and each column
    with a bind processor: its place, the processor, and whether the values a batch gives it
    are worth converting once an object (JSON and times)."""
    key = (conn.dialect.name, table.name)
    found = _PROCESSORS.get(key)
    if found is None:
        dialect = conn.dialect
        names = [c.name for c in table.c]
        converted: list[tuple[int, Callable[[Any], Any], bool]] = []
        for i, c in enumerate(table.c):
            process = c.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                converted.append((i, process, isinstance(c.type, JSON | DateTime)))
        get: Callable[[dict[str, Any]], Any] = (
            itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
        )
        found = _PROCESSORS[key] = (get, converted)
    return found


def _sqlite_insert_new(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    # The write lock first (unless a statement of this transaction has taken it): no other
    # writer stores one of these ids between the SELECT and the INSERT.
    raw = conn.connection.driver_connection
    assert raw is not None
    if not raw.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    ids = [row["id"] for row in rows]
    stored: set[str] = set()
    for i in range(0, len(ids), _SQLITE_IDS):
        part = ids[i : i + _SQLITE_IDS]
        found = conn.exec_driver_sql(
            f"SELECT id FROM events WHERE id IN ({', '.join('?' for _ in part)})", tuple(part)
        )
        stored.update(r[0] for r in found)
    new = [row for row in rows if row["id"] not in stored] if stored else rows
    if new:
        conn.exec_driver_sql(_SQLITE_INSERT, _driver_rows(conn, events, new))
    return [row["id"] for row in new]


_SQLITE_IDS = 500  # ids a SELECT (SQLite's bound parameters are limited)
_SQLITE_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def _insert_returning(conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(events).on_conflict_do_nothing(index_elements=["id"]).returning(events.c.id)
    return [r[0] for r in conn.execute(statement, rows).all()]


_UNIQUE_VIOLATION = "23505"
_COPY_EVENTS = f"COPY events ({', '.join(_COLUMNS)}) FROM STDIN"


def insert_new_copy_rows(conn: Connection, rows: Iterable[list[Any]]) -> list[str]:
    """:func:`insert_new_rows` where :func:`copies` holds, for rows in the ``COPY``'s own form:
    every column of ``events`` in order, as :class:`CopyForm` makes a row (JSON columns as their
    text, integers within their columns' range, times with their zone), the id first. What
    :class:`CopyForm` does a row is then left out (``records._event_values`` builds such rows
    from events; a test holds them to ``CopyForm`` of ``records._event_row``)."""
    if not _copies(conn):
        raise ValueError("rows in the COPY's form need PostgreSQL through psycopg")
    return _copy_new(conn, rows, ready=True)


def _copy_new(conn: Connection, rows: Iterable[Any], *, ready: bool) -> list[str]:
    """``rows`` COPYed into ``events`` when none of their ids is stored (the common case, a third
    cheaper for the server than the conflict-checked insert), else the conflict-checked path.
    ``ready``: the rows are in the COPY's form already (lists, the id first), else dicts."""
    taken = iter(rows)
    built: list[Any] = []
    driver_execute(conn, "SAVEPOINT stockade_copy")
    try:
        _copy(conn, events, _COPY_EVENTS, _kept(taken, built), ready=ready)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        driver_execute(conn, "ROLLBACK TO SAVEPOINT stockade_copy")
        built.extend(taken)  # the rows not taken yet when the server refused
        return _copy_then_insert(conn, built, ready=ready)
    driver_execute(conn, "RELEASE SAVEPOINT stockade_copy")
    return [row[0] for row in built] if ready else [row["id"] for row in built]


def _kept(rows: Iterable[Any], built: list[Any]) -> Iterator[Any]:
    """``rows``, each appended to ``built`` as it is taken (kept for a second attempt, and alive
    while the COPY runs: see :func:`_copy`)."""
    for row in rows:
        built.append(row)
        yield row


def _copy_then_insert(conn: Connection, rows: list[Any], *, ready: bool) -> list[str]:
    # Rows left by an earlier call in the same transaction would conflict, so no id is ever
    # returned twice.
    incoming = _incoming_table(conn, "events")
    columns = ", ".join(_COLUMNS)
    _copy(conn, events, f"COPY {incoming} ({columns}) FROM STDIN", rows, ready=ready)
    inserted = conn.exec_driver_sql(
        f"INSERT INTO events ({columns}) SELECT {columns} FROM {incoming} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    return [r[0] for r in inserted.all()]


def _copy(
    conn: Connection,
    table: Table,
    statement: str,
    rows: Iterable[Any],
    *,
    ready: bool = False,
) -> None:
    """COPY ``rows`` of ``table`` (every column, in order) on the driver's own cursor, in binary
    where :func:`_binary_columns` knows every column (the server then parses no text: times and
    numbers arrive as they are stored), its errors raised as SQLAlchemy's (a lost server becomes
    the store's "database error" and the dead connection leaves the pool). ``rows``: dicts, each
    put in the COPY's form by :class:`CopyForm`, or (``ready``) lists in that form already."""
    import psycopg

    form = None if ready else CopyForm(table)
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    binary = _binary_columns(table)
    if binary is not None:
        statement += " (FORMAT BINARY)"
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            if binary is not None:
                copy.set_types(binary.types)
            write = copy.write_row
            if form is None:
                for values in rows:
                    write(values)
            else:
                for row in rows:
                    write(form(row))
    except psycopg.Error as exc:
        if raw.closed:
            conn.invalidate(exc)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


class CopyForm:
    """A row of ``table`` (a dict of every column) as :func:`_copy` sends it: the values in the
    columns' order, JSON columns as their text, and, where the COPY is binary, integers checked
    against their columns' range and times given their zone (:func:`_binary_values`). One
    form a COPY: the rows of a batch share the stored form of a resource they name (the same
    dict object, see records.stored_ref), written as JSON once; every row stays alive (in
    ``rows``, or the list a generator keeps them in) while the COPY runs, so no id is reused."""

    __slots__ = ("_binary", "_columns", "_get", "_json_at", "_texts")

    def __init__(self, table: Table) -> None:
        columns = [c.name for c in table.c]
        self._columns = columns
        # a row's values in the columns' order, in one C call
        self._get = itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
        self._json_at = [i for i, c in enumerate(table.c) if isinstance(c.type, JSON)]
        self._binary = _binary_columns(table)
        self._texts: dict[int, str] = {}

    def __call__(self, row: Mapping[str, Any]) -> list[Any]:
        values = list(self._get(row))
        texts = self._texts
        for i in self._json_at:
            value = values[i]
            if value is not None:
                text = texts.get(id(value))
                if text is None:
                    text = texts[id(value)] = json_text(value)
                values[i] = text
        if self._binary is not None:
            _binary_values(values, self._binary, self._columns)
        return values


# The binary type a column is sent as (the server reads it with the column's own receive
# function: JSON's checks the text as json_in does). A table with any other column: text COPY.
_INT_RANGES = {"int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class _Binary:
    types: list[str]
    ints: list[tuple[int, int, int]]  # place, lowest, highest
    times: list[int]


_BINARY: dict[str, _Binary | None] = {}


def _binary_columns(table: Table) -> _Binary | None:
    found = _BINARY.get(table.name, _MISSING)
    if found is _MISSING:
        binary: _Binary | None = _Binary(types=[], ints=[], times=[])
        for i, c in enumerate(table.c):
            t, kind = c.type, None
            if isinstance(t, JSON | String):  # Text is a String
                kind = "text"
            elif isinstance(t, DateTime) and t.timezone:
                kind = "timestamptz"
                binary.times.append(i)  # type: ignore[union-attr]
            elif isinstance(t, BigInteger):
                kind = "int8"
            elif isinstance(t, Integer) and not isinstance(t, SmallInteger):
                kind = "int4"
            if kind is None:
                binary = None
                break
            binary.types.append(kind)  # type: ignore[union-attr]
            if kind in _INT_RANGES:
                binary.ints.append((i, *_INT_RANGES[kind]))  # type: ignore[union-attr]
        found = _BINARY[table.name] = binary
    return found  # type: ignore[return-value]


def _binary_values(values: list[Any], binary: _Binary, columns: list[str]) -> None:
    """``values`` as their binary types take them, or refused as the server refuses their text:
    psycopg's binary dumpers would wrap an integer out of range; a time without a zone is taken
    as UTC (the store writes every time in UTC)."""
    for i, low, high in binary.ints:
        value = values[i]
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise _refused(columns[i], value)
    for i in binary.times:
        value = values[i]
        if value is not None:
            if not isinstance(value, datetime):
                raise _refused(columns[i], value)
            if value.tzinfo is None:
                values[i] = value.replace(tzinfo=UTC)


def _refused(column: str, value: Any) -> Exception:
    import psycopg.errors

    return psycopg.errors.DataError(f"{column}: {type(value).__name__} value refused")
