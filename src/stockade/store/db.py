"""Opening the store: URL resolution, SQLite WAL, migrations on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from stockade.model.errors import ConfigError, StoreError

ENV_VAR = "STOCKADE_DB"


def default_url() -> str:
    """``$STOCKADE_DB``, else a SQLite file under ``$XDG_DATA_HOME/stockade``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'stockade' / 'stockade.db'}"


def normalize_url(url: str) -> str:
    """Accept plain file paths and ``postgresql://`` URLs (driven by psycopg 3)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """A migrated database. Cheap to keep around; open one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database error: {exc.orig}", subject=self.safe_url) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database error: {exc.orig}", subject=self.safe_url) from exc

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and create and migrate, by default) the store at ``url`` or the default one."""
    raw = normalize_url(url or default_url())
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {raw!r}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            try:
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {db}: {exc.strerror}") from exc
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"cannot use database URL {raw!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if migrate:
        upgrade(store)
    return store


@cache
def _script_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(_alembic_config(None)).get_heads())


def _alembic_config(conn: Connection | None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def current_heads(store: Store) -> frozenset[str]:
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except SQLAlchemyError:
        return frozenset()
    return frozenset(r[0] for r in rows)


def upgrade(store: Store) -> None:
    """Bring the schema to the newest revision of every branch (no-op when it is there)."""
    if current_heads(store) == _script_heads():
        return
    from alembic import command

    try:
        with store.engine.begin() as conn:
            if store.dialect == "postgresql":
                # Two processes migrating at once would race; serialize them.
                conn.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
            command.upgrade(_alembic_config(conn), "heads")
    except OperationalError as exc:
        raise StoreError(f"cannot open or migrate the database: {exc.orig}", subject=store.safe_url) from exc
