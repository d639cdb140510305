"""The advisory store: one-transaction imports, replacement per source, status and freshness,
on SQLite and PostgreSQL, and imports from real HTTP and file:// URLs."""

from __future__ import annotations

import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from stockade.model.duration import parse_duration as parse_age
from stockade.model.errors import AdvisoryError, StaleDataError
from stockade.scanning.advisories.freshness import check_freshness, db_info
from stockade.scanning.advisories.model import Advisory, Affected, ImportBatch
from stockade.scanning.advisories.store import write_batches
from stockade.scanning.advisories.update import import_sources, load_config
from stockade.store import Store, open_store


def test_import_status_and_replace(any_store: Store, advisories_dir: Path) -> None:
    osv = str(advisories_dir / "osv-samples")
    tracker = str(advisories_dir / "debian-tracker")
    import_sources(any_store, [osv, tracker])
    info = db_info(any_store)
    assert [s.kind for s in info.sources] == ["osv", "debian-tracker"]
    first = info.records
    counts = dict(info.by_ecosystem)
    assert counts["pypi"] >= 4 and counts["debian:12"] == 2
    # Importing the same source again replaces its records instead of doubling them.
    import_sources(any_store, [osv])
    again = db_info(any_store)
    assert again.records == first and len(again.sources) == 2
    assert again.built_at is not None and again.built_at >= info.built_at


def test_failed_import_leaves_previous_data(
    sqlite_store: Store, advisories_dir: Path, tmp_path: Path
) -> None:
    import_sources(sqlite_store, [str(advisories_dir / "osv-samples")])
    before = db_info(sqlite_store)
    # A source that cannot be opened stops the import before anything is written.
    with pytest.raises(AdvisoryError):
        import_sources(
            sqlite_store, [str(advisories_dir / "debian-tracker"), str(tmp_path / "missing")]
        )
    # A failure in the middle of writing rolls the whole transaction back.
    good = ImportBatch(source=str(advisories_dir / "osv-samples"), kind="osv")
    poisoned = Advisory(
        id="X",
        source="osv",
        affected=(Affected(ecosystem="pypi", package="x", versions=(object(),)),),
    )  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_batches(
            sqlite_store, [good, ImportBatch(source="p", kind="osv", advisories=[poisoned])]
        )
    after = db_info(sqlite_store)
    assert after.records == before.records and after.built_at == before.built_at
    assert [s.name for s in after.sources] == [s.name for s in before.sources]


def test_all_bad_source_is_an_error(sqlite_store: Store, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[1, 2")
    with pytest.raises(AdvisoryError, match="no usable advisory records"):
        import_sources(sqlite_store, [str(tmp_path / "x.json")])
    assert db_info(sqlite_store).built_at is None


def test_freshness(sqlite_store: Store, advisories_dir: Path) -> None:
    with pytest.raises(StaleDataError, match="empty"):
        check_freshness(sqlite_store)
    check_freshness(sqlite_store, allow_stale=True)
    import_sources(sqlite_store, [str(advisories_dir / "osv-samples")])
    check_freshness(sqlite_store)
    later = datetime.now(UTC) + timedelta(days=8)
    with pytest.raises(StaleDataError, match=r"built 8\.0 days ago") as info:
        check_freshness(sqlite_store, now=later)
    assert info.value.exit_code == 3
    check_freshness(sqlite_store, now=later, max_age=parse_age("9d"))
    check_freshness(sqlite_store, now=later, allow_stale=True)
    assert parse_age("36h") == timedelta(hours=36)


@pytest.fixture
def http_dir(advisories_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving the samples (and an OSV all.zip made from them)."""
    root = tmp_path / "www"
    shutil.copytree(advisories_dir, root)
    with zipfile.ZipFile(root / "all.zip", "w") as zf:
        for f in sorted((advisories_dir / "osv-samples").glob("*.json")):
            zf.write(f, f.name)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_import_from_http_and_file_urls(
    sqlite_store: Store, http_dir: str, advisories_dir: Path
) -> None:
    url = f"{http_dir}/osv-samples/PYSEC-2023-74.json"
    file_url = (advisories_dir / "debian-tracker" / "debian_security_tracker_excerpt.json").as_uri()
    import_sources(sqlite_store, [url, file_url])
    info = db_info(sqlite_store)
    assert [s.name for s in info.sources] == [url, file_url]
    assert info.records == 3
    import_sources(sqlite_store, [f"{http_dir}/all.zip"])
    assert db_info(sqlite_store).sources[-1].records == 20  # incl. the RubyGems record
    with pytest.raises(AdvisoryError, match="HTTP 404"):
        import_sources(sqlite_store, [f"{http_dir}/missing.json"])
    with pytest.raises(AdvisoryError, match="cannot download"):
        import_sources(sqlite_store, ["http://127.0.0.1:9/none.json"])


def test_sources_config(tmp_path: Path, advisories_dir: Path) -> None:
    cfg = tmp_path / "sources.yaml"
    cfg.write_text(
        "sources:\n"
        f"  - {advisories_dir / 'osv-samples'}\n"
        f"  - url: {(advisories_dir / 'alpine-secfixes').as_uri()}\n"
        "  - path: relative/dir\n"
    )
    assert load_config(cfg) == [
        str(advisories_dir / "osv-samples"),
        (advisories_dir / "alpine-secfixes").as_uri(),
        str(tmp_path / "relative" / "dir"),
    ]
    from stockade.model.errors import ConfigError

    for bad in ("sources: []\n", "sources:\n  - {x: 1}\n", "[not, a, mapping", "- a\n"):
        cfg.write_text(bad)
        with pytest.raises(ConfigError):
            load_config(cfg)
    with pytest.raises(ConfigError, match="no sources configured"):
        load_config(tmp_path / "none.yaml")


@pytest.mark.parametrize("column_already_there", [False, True])
def test_upgrade_from_the_first_schema(
    tmp_path: Path, advisories_dir: Path, column_already_there: bool
) -> None:
    """Databases made at advisories_0001 (with or without the early `upstream` column) upgrade."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from stockade.store import open_store
    from stockade.store.db import _alembic_config, current_heads

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "advisories_0001")
        if column_already_there:
            conn.execute(
                text(
                    "ALTER TABLE adv_vulnerabilities ADD COLUMN upstream TEXT NOT NULL DEFAULT '[]'"
                )
            )
    engine.dispose()
    store = open_store(url)
    try:
        assert "s17vuln_0001" in current_heads(store)
        import_sources(store, [str(advisories_dir / "osv-samples")])
        assert db_info(store).records == 20
    finally:
        store.close()


def test_db_info_reads_alike_through_sqlite3_and_sqlalchemy(
    tmp_path: Path, advisories_dir: Path
) -> None:
    # `stockade db status` on an SQLite store reads through sqlite3 (no SQLAlchemy import); the
    # SQLAlchemy queries, which PostgreSQL takes, are the reference.
    url = f"sqlite:///{tmp_path / 's.db'}"
    fast = open_store(url)
    reference = Store(fast.engine, url=url)
    assert fast.sqlite_connect() is not None and reference.sqlite_connect() is None
    assert db_info(fast) == db_info(reference)  # empty
    import_sources(
        fast, [str(advisories_dir / "osv-samples"), str(advisories_dir / "debian-tracker")]
    )
    info = db_info(fast)
    assert info.records > 0 and len(info.sources) == 2 and info.built_at is not None
    assert info.sources[0].imported_at.tzinfo is not None
    assert info == db_info(reference)
    fast.close()
    reference.close()
