"""Shared fixtures. Servers that .ci/run starts (PostgreSQL, the loopback registry) are required
when CI=true; on a developer machine without them the tests that need them are skipped with the
reason, never silently passed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.store import Store, open_store
from tests.support import IN_CI, require

__all__ = ["IN_CI", "require"]

PG_URL = os.environ.get(
    "STOCKADE_TEST_PG", "postgresql://stockade:stockade@127.0.0.1:5432/stockade_test"
)
SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Commands store by default; a test that does not name a database must not write to the
    user's (~/.local/share/stockade): every process the suite starts gets its own default."""
    if "STOCKADE_DB" not in os.environ:
        import tempfile

        folder = tempfile.mkdtemp(prefix="stockade-tests-")
        os.environ["STOCKADE_DB"] = f"sqlite:///{folder}/default.db"
        os.environ["XDG_DATA_HOME"] = folder  # for tests that unset STOCKADE_DB on purpose


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite golden files from the current output instead of comparing with them.",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'stockade.db'}")
    yield store
    store.close()


def _pg_reachable() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_store() -> Iterator[Store]:
    """A freshly emptied PostgreSQL database (schema dropped and migrated again)."""
    require(
        _pg_reachable(), "PostgreSQL is not listening on 127.0.0.1:5432 (./dev setup starts it)"
    )
    from sqlalchemy import create_engine, text

    from stockade.store.db import normalize_url

    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    store = open_store(PG_URL)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """Runs a test once on SQLite and once on PostgreSQL."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    return request.getfixturevalue(name)
