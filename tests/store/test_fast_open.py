"""The fast migration-heads reader agrees with Alembic's own view of the scripts."""

from __future__ import annotations

from stockade.store import db


def test_fast_heads_equal_alembic_heads() -> None:
    db._script_heads.cache_clear()
    fast = db._script_heads()
    assert fast == db._alembic_heads()
    assert "core_0001" not in fast  # every pillar branch chains from it
    assert "scanning_0001" in fast


def test_up_to_date_sqlite_file_opens_without_an_engine(tmp_path, monkeypatch) -> None:
    from sqlalchemy import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no template yet
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = db.open_store(url)  # creates and migrates: the full path
    assert first.sqlite_path is None and first.engine_started
    first.close()
    again = db.open_store(url)
    assert again.sqlite_path == str(tmp_path / "db.sqlite") and not again.engine_started
    assert again.dialect == "sqlite" and again.safe_url == url
    conn = again.sqlite_connect()
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with again.begin() as sa_conn:  # the engine starts on first use
        assert sa_conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() >= 1
    assert again.engine_started
    again.close()


def test_stale_schema_takes_the_migrating_path(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "db.sqlite"
    db.open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:  # back to before the scanning branch existed
        conn.execute("DROP TABLE scan_layer_cache")
        # other branches (admission, ...) stay at their heads; scanning goes back to core
        conn.execute("DELETE FROM alembic_version WHERE version_num = 'scanning_0001'")
        if not conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0]:
            conn.execute("INSERT INTO alembic_version VALUES ('core_0001')")
    store = db.open_store(f"sqlite:///{path}")
    assert store.sqlite_path is None  # it had to migrate, through SQLAlchemy and Alembic
    assert db.current_heads(store) == db._script_heads()
    store.close()


def test_the_standard_library_connection_is_kept_per_thread_until_the_store_closes(
    tmp_path,
) -> None:
    import sqlite3
    import threading

    import pytest

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db.open_store(url).close()
    store = db.open_store(url)
    conn = store.sqlite_connect()
    assert conn is not None
    conn.close()  # its users' close keeps it open: one connection, one WAL checkpoint at the end
    assert store.sqlite_connect() is conn
    assert conn.execute("SELECT 1").fetchone() == (1,)
    other: list[object] = []
    worker = threading.Thread(target=lambda: other.append(store.sqlite_connect()))
    worker.start()
    worker.join()
    assert other[0] is not None and other[0] is not conn  # each thread has its own
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
