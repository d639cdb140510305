"""The scan results store on SQLite and PostgreSQL: inventories per digest, runs, image counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from stockade.model import Severity, StoreError
from stockade.scanning.gate import Policy
from stockade.scanning.inventory_codec import inventory_from_dict, inventory_to_dict
from stockade.scanning.scan_store import (
    image_digest,
    list_images,
    load_inventory,
    record_scan,
    run_count,
    save_inventory,
    split_repository,
    stored_digests,
)
from stockade.store import Store, open_store
from stockade.store.records import list_findings
from tests.scanning.scan_support import DIGEST, IMAGE, report, sample_inventory


def test_inventory_round_trip() -> None:
    inv = replace(sample_inventory(), skipped=("GIT range skipped",))
    pkg = replace(inv.packages[0], metadata=(("maven.group", "org.x"),), licenses=("MIT",))
    inv = replace(inv, packages=(pkg, *inv.packages[1:]))
    assert inventory_from_dict(inventory_to_dict(inv)) == inv
    with pytest.raises(StoreError):
        inventory_from_dict({"codec": 99})


def test_save_load_record_and_list(any_store) -> None:
    inv = sample_inventory()
    assert load_inventory(any_store, DIGEST) is None
    assert save_inventory(any_store, inv, catalogers="dpkg@1") == DIGEST
    assert save_inventory(any_store, inv, catalogers="dpkg@1") == DIGEST  # idempotent
    stored = load_inventory(any_store, DIGEST)
    assert stored.inventory == inv and stored.matched_db_built is None
    assert stored.catalogers == "dpkg@1"
    assert save_inventory(any_store, replace(inv, image=None), catalogers="x") is None

    rep = report(Policy(fail_on=Severity.HIGH, ignore_unfixed=True))
    run = record_scan(any_store, rep, reference=f"{IMAGE}:1.0")
    assert stored_digests(any_store) == [(DIGEST, datetime(2026, 11, 26, tzinfo=UTC))]
    assert image_digest(any_store, f"{IMAGE}:1.0") == DIGEST
    assert image_digest(any_store, f"{IMAGE}:2.0") is None
    [img] = list_images(any_store)
    assert img.reference == f"{IMAGE}:1.0"
    assert (img.registry, img.repository, img.tag) == ("127.0.0.1:5000", "library/app", "1.0")
    assert img.counts == {
        "critical": 1,
        "high": 1,
        "medium": 1,
        "low": 0,
        "negligible": 0,
        "unknown": 0,
    }
    assert img.suppressed == 2 and img.failed
    assert img.db_built == datetime(2026, 11, 26, tzinfo=UTC)
    assert len(list_findings(any_store, run_id=run)) == 3  # the active ones

    # A second scan of the same reference updates the row, the run count grows.
    record_scan(any_store, report(Policy()), reference=f"{IMAGE}:1.0", mode="rematch")
    [img] = list_images(any_store)
    assert img.counts["low"] == 1 and not img.failed
    assert run_count(any_store) == 2 and run_count(any_store, mode="rematch") == 1
    assert list_images(any_store, repository="library/*")
    assert not list_images(any_store, repository="other/*")

    # Other catalogers replace the kept inventory and forget its last match.
    fewer = replace(inv, packages=inv.packages[:1])
    save_inventory(any_store, fewer, catalogers="dpkg@2")
    stored = load_inventory(any_store, DIGEST)
    assert stored.inventory == fewer and stored.matched_db_built is None


def test_split_repository() -> None:
    assert split_repository("127.0.0.1:5000/team/app") == ("127.0.0.1:5000", "team/app")
    assert split_repository("localhost/app") == ("localhost", "app")
    assert split_repository("library/debian") == (None, "library/debian")
    assert split_repository(None) == (None, None)


def test_list_images_reads_alike_through_sqlite3_and_sqlalchemy(tmp_path) -> None:
    # The `images` command on an SQLite store reads through sqlite3 (no SQLAlchemy import); the
    # SQLAlchemy query, which every other database takes, is the reference.
    url = f"sqlite:///{tmp_path / 's.db'}"
    fast = open_store(url)
    reference = Store(fast.engine, url=url)
    assert fast.sqlite_connect() is not None and reference.sqlite_connect() is None
    record_scan(fast, report(Policy(fail_on=Severity.HIGH)), reference=f"{IMAGE}:1.0")
    record_scan(fast, report(Policy()), reference=f"{IMAGE}:2.0", mode="rematch")
    record_scan(fast, report(Policy(ignore_unfixed=True)), reference="docker.io/other/x:1")
    record_scan(fast, report(Policy()), reference=f"{IMAGE}:1.0")  # the row follows its last run
    assert len(list_images(fast)) == 3  # in the same order both ways (below)
    for repository in (None, "library/*", "other/*", "none/*", "library/app"):
        assert list_images(fast, repository=repository) == list_images(
            reference, repository=repository
        ), repository
    assert list_images(fast, repository="library/*")
    assert not list_images(fast, repository="none/*")
    fast.close()
    reference.close()
