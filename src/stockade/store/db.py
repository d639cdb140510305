"""Opening the store: URL resolution, SQLite WAL, migrations on first use.

SQLAlchemy is imported only when a database is actually used through it: opening an existing,
up-to-date SQLite file checks its schema with the standard library and defers the engine, so a
command that only reads a cache with :meth:`Store.sqlite_connect` (the image layer cache on a warm
re-scan) starts a few hundred milliseconds faster.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stockade.model.errors import ConfigError, StoreError
from stockade.store import textlists

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import Connection, Engine

ENV_VAR = "STOCKADE_DB"


def default_url() -> str:
    """``$STOCKADE_DB``, else a SQLite file under ``$XDG_DATA_HOME/stockade``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'stockade' / 'stockade.db'}"


def redact_url(url: str) -> str:
    """``url`` with its password as ``***``, even when it does not parse as a URL (everything
    between the user's ``:`` and the last ``@`` counts as the password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def one_line(message: object, password: str | None = None) -> str:
    """A driver's message on one line, with any copy of the password masked."""
    text = " ".join(str(message).split())
    # A password of a few characters would also match ordinary words of the message.
    return text.replace(password, "***") if password and len(password) >= 4 else text


def normalize_url(url: str) -> str:
    """Accept plain file paths and ``postgresql://`` URLs (driven by psycopg 3)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    """A migrated database. Cheap to keep around; open one per process."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        url: str | None = None,
        sqlite_path: str | None = None,
    ) -> None:
        if engine is None and url is None:
            raise ValueError("Store needs an engine or a URL")
        self._engine = engine
        self._url = url
        self.sqlite_path = sqlite_path  # set for an SQLite file opened without SQLAlchemy yet
        self._sqlite: dict[int, _KeptConnection] = {}  # sqlite_connect's, one per thread

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert self._url is not None
            self._engine = _create_engine(self._url)
        return self._engine

    @property
    def engine_started(self) -> bool:
        return self._engine is not None

    @property
    def dialect(self) -> str:
        if self._engine is None and self.sqlite_path is not None:
            return "sqlite"
        return str(self.engine.dialect.name)

    def sqlite_connect(self) -> sqlite3.Connection | None:
        """A standard-library connection to the SQLite file, or None when this is not SQLite
        opened on the fast path. Same pragmas as the engine's connections; the caller closes it
        (and writes inside ``with conn:``).

        The connection is this thread's, kept open until :meth:`close` (its own ``close`` does
        nothing): a warm re-scan reads and writes through it four times, and each connection
        that is the file's last to close checkpoints and removes the write-ahead log."""
        if self.sqlite_path is None:
            return None
        import sqlite3
        import threading

        kept = self._sqlite.get(threading.get_ident())
        if kept is not None:
            return kept
        try:
            conn = sqlite3.connect(
                self.sqlite_path,
                timeout=10,
                factory=_kept_connection_class(),
                check_same_thread=False,
            )
            _sqlite_pragmas(conn, None)
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}", subject=self.safe_url) from exc
        self._sqlite[threading.get_ident()] = conn
        return conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        from sqlalchemy.exc import OperationalError

        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self.error("database error", exc.orig) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        from sqlalchemy.exc import OperationalError

        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise self.error("database error", exc.orig) from exc

    def error(self, what: str, cause: object) -> StoreError:
        """A one-line StoreError naming the database without its password."""
        password = self._engine.url.password if self._engine is not None else None
        return StoreError(f"{what}: {one_line(cause, password)}", subject=self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL for messages: the password, however the URL is written, as ``***``."""
        if self._engine is None and self.sqlite_path is not None:
            return f"sqlite:///{self.sqlite_path}"
        if self._url is not None:
            return redact_url(self._url)
        return str(self.engine.url.render_as_string(hide_password=True))

    def close(self) -> None:
        while self._sqlite:
            self._sqlite.popitem()[1].close_kept()
        if self._engine is not None:
            self._engine.dispose()


@cache
def _kept_connection_class() -> type[_KeptConnection]:
    import sqlite3

    class KeptConnection(sqlite3.Connection):
        """A connection its users do not close: the store closes it (``close_kept``)."""

        def close(self) -> None:
            return None

        def close_kept(self) -> None:
            super().close()

    return cast("type[_KeptConnection]", KeptConnection)


if TYPE_CHECKING:

    class _KeptConnection(sqlite3.Connection):
        def close_kept(self) -> None: ...


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    textlists.register(dbapi_conn)  # the graph's merge in its upserts


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and create and migrate, by default) the store at ``url`` or the default one."""
    raw = normalize_url(url or default_url())
    fast = _current_sqlite_file(raw)
    if fast is not None:
        return Store(url=raw, sqlite_path=fast)
    new_file = _new_sqlite_file(raw) if migrate else None
    if new_file is not None:
        from stockade.store import template

        # a new database: a copy of the one the same migrations made before (.template)
        _create_private_sqlite_file(new_file)
        if template.fill(new_file):
            fast = _current_sqlite_file(raw)
            if fast is not None:
                return Store(url=raw, sqlite_path=fast)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"not a database URL: {redact_url(raw)!r}") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            _create_private_sqlite_file(Path(db))
    store = Store(_create_engine(raw), url=raw)
    if migrate:
        upgrade(store)
        if new_file is not None:
            from stockade.store import template

            template.save(new_file)
    return store


def _new_sqlite_file(raw: str) -> Path | None:
    """The file of a plain ``sqlite:///FILE`` URL that does not exist yet, or is empty (a new
    database), else None."""
    if not raw.startswith("sqlite:///") or "?" in raw:
        return None
    path = raw[len("sqlite:///") :]
    if not path or path == ":memory:":
        return None
    try:
        return Path(path) if os.stat(path).st_size == 0 else None
    except FileNotFoundError:
        return Path(path)
    except OSError:
        return None


def _create_private_sqlite_file(path: Path) -> None:
    """Create a missing database folder (0700) and file (0600) before SQLite does: it would make
    the file 0644 under the usual umask, and gives the -wal and -shm files the database's mode.
    A folder or file that exists already is left as it is."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror}") from exc
    os.close(fd)  # SQLite takes an empty file for a new database


def _create_engine(raw: str) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import ArgumentError

    from stockade.store.jsontext import json_text

    try:
        # JSON columns written by orjson where it writes what json.dumps would (see jsontext)
        engine = create_engine(raw, json_serializer=json_text)
    except (ArgumentError, ModuleNotFoundError, ValueError) as exc:
        safe = redact_url(raw)
        raise ConfigError(f"cannot use database URL {safe!r}: {one_line(exc)}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _current_sqlite_file(raw: str) -> str | None:
    """The path of a plain ``sqlite:///FILE`` URL whose file exists and whose schema is at every
    head already (checked with the standard library); None otherwise, and the slow path decides."""
    if not raw.startswith("sqlite:///") or "?" in raw:
        return None
    path = raw[len("sqlite:///") :]
    if not path or path == ":memory:" or not os.path.isfile(path):
        return None
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if frozenset(r[0] for r in rows) != _script_heads():
        return None
    return path


_REVISION_RE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)


@cache
def _script_heads() -> frozenset[str]:
    """Heads of the migration scripts. Read from the revision files' ``revision`` and
    ``down_revision`` lines, because importing Alembic costs a few hundred milliseconds of every
    command's start-up; Alembic itself decides when a file is not in that simple form."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        fields = dict(_REVISION_RE.findall(path.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(fields["revision"])
            down = ast.literal_eval(fields.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return _alembic_heads()
        if not isinstance(revision, str):
            return _alembic_heads()
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
        elif down is not None:
            return _alembic_heads()
    return frozenset(revisions - parents)


def _alembic_heads() -> frozenset[str]:
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
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

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
    from alembic.util import CommandError
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    try:
        with store.engine.begin() as conn:
            if store.dialect == "postgresql":
                # Two processes migrating at once would race; serialize them.
                conn.execute(text("SELECT pg_advisory_xact_lock(7355608)"))
            command.upgrade(_alembic_config(conn), "heads")
    except CommandError as exc:
        # e.g. the database was migrated by a newer Stockade with revisions this one lacks
        raise store.error("cannot migrate the database", exc) from exc
    except OperationalError as exc:
        raise store.error("cannot open or migrate the database", exc.orig) from exc
