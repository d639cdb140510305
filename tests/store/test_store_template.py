"""A new SQLite store is a copy of one the migrations made (stockade.store.template): the same
schema and revisions as a migrated one, without Alembic; a damaged, foreign or stale template is
never used."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.store import db, template


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "stockade" / "store"


def _schema(path: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(path)
    try:
        return (
            sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")),
            sorted(conn.execute("SELECT version_num FROM alembic_version")),
        )
    finally:
        conn.close()


def _open(path: Path) -> db.Store:
    return db.open_store(f"sqlite:///{path}")


def test_a_new_store_is_the_migrated_schema(cache: Path, tmp_path: Path) -> None:
    first = _open(tmp_path / "a.db")
    assert first.engine_started  # no template yet: Alembic migrated it
    first.close()
    (kept,) = cache.iterdir()  # the template alone: no temporary or journal left beside it
    assert (
        kept.suffix == ".db"
        and kept.stat().st_mode & 0o777 == 0o600
        and cache.stat().st_mode & 0o777 == 0o700
    )
    second = _open(tmp_path / "b.db")
    assert second.sqlite_path == str(tmp_path / "b.db") and not second.engine_started
    second.close()
    assert _schema(tmp_path / "a.db") == _schema(tmp_path / "b.db")
    assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600
    again = _open(tmp_path / "b.db")  # and it is a store like any other
    with again.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("SELECT count(*) FROM events")).scalar()
    again.close()


def test_a_new_store_from_the_template_needs_no_alembic(cache: Path, tmp_path: Path) -> None:
    _open(tmp_path / "a.db").close()
    script = (
        "import sys\n"
        "from stockade.store import open_store\n"
        f"open_store('sqlite:///{tmp_path / 'b.db'}').close()\n"
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 3],
        lambda b: b[:4096] + bytes(len(b) - 4096),
        lambda b: b"not a database at all",
        lambda b: b"",
    ],
)
def test_a_damaged_template_is_rebuilt(cache: Path, tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    _open(tmp_path / "a.db").close()
    (kept,) = cache.glob("*.db")
    kept.write_bytes(damage(kept.read_bytes()))
    store = _open(tmp_path / "b.db")
    assert store.engine_started  # migrated as usual
    store.close()
    assert _schema(tmp_path / "a.db") == _schema(tmp_path / "b.db")
    third = _open(tmp_path / "c.db")  # and the template is whole again
    assert not third.engine_started
    third.close()


def test_a_template_others_can_write_is_not_used(cache: Path, tmp_path: Path) -> None:
    _open(tmp_path / "a.db").close()
    (kept,) = cache.glob("*.db")
    kept.chmod(0o666)
    store = _open(tmp_path / "b.db")
    assert store.engine_started
    store.close()


def test_other_migrations_get_another_template(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = template.template_path()
    copy = tmp_path / "migrations"
    (copy / "versions").mkdir(parents=True)
    (copy / "env.py").write_bytes((template.MIGRATIONS / "env.py").read_bytes())
    for path in (template.MIGRATIONS / "versions").glob("*.py"):
        (copy / "versions" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(template, "MIGRATIONS", copy)
    assert template.template_path() == before
    last = sorted((copy / "versions").glob("*.py"))[-1]
    last.write_bytes(last.read_bytes() + b"\n# changed\n")
    assert template.template_path() != before


def test_an_existing_file_is_never_overwritten(cache: Path, tmp_path: Path) -> None:
    _open(tmp_path / "a.db").close()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    _open(other).close()  # migrated around the table, not replaced by the template
    conn = sqlite3.connect(other)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'mine'").fetchone()[0]
    conn.close()
