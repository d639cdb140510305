"""The kept match of an image (stockade.scanning.match_cache): a warm re-scan reuses it only while
the advisory data is the same, and it reports what matching again would; the scan is recorded
alike through sqlite3 (an SQLite store opened without SQLAlchemy) and through SQLAlchemy."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage
from stockade.scanning import match_cache
from stockade.scanning.advisories.reader import read_source
from stockade.scanning.advisories.store import write_batches
from stockade.scanning.pipeline import ScanOptions, real_backend, scan_image
from stockade.scanning.results import ScanReport
from stockade.scanning.scan_store import load_match
from stockade.store import Store, open_store
from tests.scanning.scan_cli_support import OWN_RECORDS

LATE_RECORD = "DEBIAN-CVE-2005-2541.json"  # tar in the sample image's Debian layer
LATE_ID = "CVE-2005-2541"


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    """Our advisory records split in two sources: all but LATE_RECORD, and LATE_RECORD alone."""
    first, late = tmp_path / "first", tmp_path / "late"
    first.mkdir()
    late.mkdir()
    for path in OWN_RECORDS.glob("*.json"):
        shutil.copy(path, (late if path.name == LATE_RECORD else first) / path.name)
    return first, late


@pytest.fixture(params=["sqlite3", "sqlalchemy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An SQLite store as a warm re-scan opens it (sqlite3), and one driven by SQLAlchemy."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    open_store(url).close()  # created and migrated
    opened = open_store(url)
    if request.param == "sqlalchemy":
        opened = Store(opened.engine, url=url)
    assert (opened.sqlite_connect() is not None) == (request.param == "sqlite3")
    yield opened
    opened.close()


def _ids(report: ScanReport) -> set[str]:
    return {g.finding.id for g in report.gate.findings}


def _scan(store: Store, sample: SampleImage) -> ScanReport:
    ref = f"oci:{sample.oci_dir}:{sample.tag}"
    return scan_image(store, ref, ScanOptions(), real_backend())


def test_an_advisory_update_invalidates_the_kept_match(
    store: Store, sample: SampleImage, tmp_path: Path
) -> None:
    first, late = _sources(tmp_path)
    built = datetime.now(UTC).replace(microsecond=0)
    write_batches(store, [read_source(str(first))], now=built)
    cold = _scan(store, sample)
    warm = _scan(store, sample)
    assert warm.inventory.cached_layers and _ids(warm) == _ids(cold) and LATE_ID not in _ids(cold)
    # The same build time on purpose: only the data's generation tells the two imports apart.
    write_batches(store, [read_source(str(first)), read_source(str(late))], now=built)
    after = _scan(store, sample)
    assert after.inventory.cached_layers  # the inventory is still reused, the match is not
    assert _ids(after) == _ids(cold) | {LATE_ID}
    again = _scan(store, sample)
    assert _ids(again) == _ids(after)


def test_the_kept_match_is_what_matching_again_finds(
    store: Store, sample: SampleImage, tmp_path: Path
) -> None:
    write_batches(store, [read_source(str(OWN_RECORDS))])
    cold = _scan(store, sample)
    digest = cold.inventory.image.manifest_digest if cold.inventory.image else None
    assert digest
    key = match_cache.match_key(cold.database)
    assert key is not None
    kept = load_match(store, digest, key)
    assert kept is not None and kept.findings
    # Equal dataclasses: every field, tuples included, survives the JSON.
    assert tuple(kept.findings) == tuple(g.finding for g in cold.gate.findings)
    assert tuple(kept.unchecked) == cold.unchecked and tuple(kept.skipped) == cold.match_skipped
    assert load_match(store, digest, key + "x") is None
    warm = _scan(store, sample)
    assert warm.gate == cold.gate and warm.unchecked == cold.unchecked


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """The scan tables' rows without the columns that differ by nature (ids, times)."""
    varying = {"id", "pk", "run_id", "last_run_id", "image_id", "at", "started_at"}
    varying |= {"finished_at", "first_seen", "last_scanned", "created_at", "matched_at"}
    varying |= {"match_key"}  # holds the data's generation, different in each database
    out = {}
    with sqlite3.connect(db) as conn:
        for table in ("scan_images", "scan_runs", "scan_inventories", "findings"):
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            out[table] = [
                tuple(v for n, v in zip(names, row, strict=True) if n not in varying)
                for row in cur.fetchall()
            ]
    return out


def test_both_paths_record_the_same_rows(sample: SampleImage, tmp_path: Path) -> None:
    built = datetime.now(UTC)
    rows = {}
    for path in ("sqlite3", "sqlalchemy"):
        db = tmp_path / f"{path}.sqlite"
        url = f"sqlite:///{db}"
        open_store(url).close()
        store = open_store(url)
        if path == "sqlalchemy":
            store = Store(store.engine, url=url)
        write_batches(store, [read_source(str(OWN_RECORDS))], now=built)
        _scan(store, sample)
        _scan(store, sample)  # a warm one: its own run and findings
        store.close()
        rows[path] = _rows(db)
        with sqlite3.connect(db) as conn:
            times = conn.execute(
                "SELECT started_at, finished_at, db_built FROM scan_runs"
            ).fetchall()
            stamps = conn.execute("SELECT at FROM findings").fetchall()
        for value in [v for row in times + stamps for v in row]:
            # Times as SQLAlchemy writes them on SQLite, so both paths sort and read alike.
            assert datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
    assert rows["sqlite3"] == rows["sqlalchemy"]
    assert len(rows["sqlite3"]["scan_runs"]) == 2 and rows["sqlite3"]["findings"]
