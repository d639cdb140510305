"""Shared fixtures. Servers that .ci/run starts (PostgreSQL, the loopback registry) are required
when CI=true; on a developer machine without them the tests that need them are skipped with the
reason, never silently passed."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from stockade.store import Store, open_store
from tests.support import IN_CI, SCHEMA_SUFFIX, WORKER, require

__all__ = ["IN_CI", "WORKER", "require"]

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


# Source text that marks a test as a lab test: it builds network namespaces, nftables rules or lab
# pods, which are shared kernel state. Under pytest-xdist every lab test runs in one worker (the
# "lab" group of --dist loadgroup), one after the other, while the other modules run in parallel.
_LAB_SIGNS = (
    "require_root(",
    "stockade.lab import manager",
    "stockade.lab.manager",
    "manager.up(",
    "tests.api.lab",
)


@cache
def _source_has_lab_signs(path: str) -> bool:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return False
    return any(sign in text for sign in _LAB_SIGNS)


@cache
def _fixture_has_lab_signs(func: object) -> bool:
    """The fixture's own source, not its file's: a conftest that holds a lab fixture also holds
    plain ones (``tests/network/conftest.py``'s session ``inspectors``), whose tests are no lab
    tests. The fixtures a lab fixture requests are in the test's closure, and so are the ones
    that request it (``enforcer`` asks for ``lab``)."""
    try:
        return any(sign in inspect.getsource(func) for sign in _LAB_SIGNS)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def _is_lab_test(item: pytest.Item) -> bool:
    if _source_has_lab_signs(str(item.path)):
        return True
    here = Path(__file__)
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info else ():
        for fixture in defs:
            try:
                source = inspect.getsourcefile(fixture.func)
            except TypeError:
                continue
            if (
                source
                and source.startswith(str(here.parent))
                and source != str(here)  # this file names the signs; its fixtures are not lab
                and _fixture_has_lab_signs(fixture.func)
            ):
                return True
    return False


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (--dist loadgroup) a module's tests run in one worker, in order, sharing its
    module-scoped fixtures (a controller started once, tests that build on the previous one's
    state); every lab test runs in the one "lab" worker group."""
    for item in items:
        group = "lab" if _is_lab_test(item) else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


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


def pg_schema_url(schema: str) -> str:
    """PG_URL in a freshly emptied schema of its own, suffixed with the xdist worker's name and
    the run's id (``SCHEMA_SUFFIX``) so parallel workers and parallel runs never share one."""
    require(
        _pg_reachable(), "PostgreSQL is not listening on 127.0.0.1:5432 (./dev setup starts it)"
    )
    from sqlalchemy import create_engine, text

    from stockade.store.db import normalize_url

    schema = f"{schema}_{SCHEMA_SUFFIX}"
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    """Drop what ``pg_schema_url(schema)`` made (nothing when PostgreSQL is not there)."""
    if not _pg_reachable():
        return
    from sqlalchemy import create_engine, text

    from stockade.store.db import normalize_url

    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema}_{SCHEMA_SUFFIX} CASCADE"))
    engine.dispose()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop every PostgreSQL schema this process made (``pg_schema_url``), dropped by its test or
    not, so runs leave the test database as they found it."""
    if not _pg_reachable():
        return
    from sqlalchemy import create_engine, text

    from stockade.store.db import normalize_url

    engine = create_engine(normalize_url(PG_URL))
    try:
        with engine.begin() as conn:
            names = conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE right(nspname, :n) = :suffix"),
                {"n": len(SCHEMA_SUFFIX) + 1, "suffix": f"_{SCHEMA_SUFFIX}"},
            ).scalars()
            for name in list(names):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    except Exception as exc:  # the database went away: nothing to clean, nothing to fail
        print(f"conftest: could not drop this run's schemas: {exc}")
    finally:
        engine.dispose()


@pytest.fixture
def pg_store() -> Iterator[Store]:
    """A freshly emptied PostgreSQL schema (dropped and migrated again), one per xdist worker."""
    store = open_store(pg_schema_url("store"))
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """Runs a test once on SQLite and once on PostgreSQL."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    return request.getfixturevalue(name)
