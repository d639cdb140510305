"""The registry walk's decisions (scan once per digest, re-match on new advisory data, unchanged
otherwise) with an in-memory registry listing and a recording backend at the I/O seam; the
end-to-end run against the loopback registry is in test_registry_scan_e2e.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from stockade.model import ImageError, Severity
from stockade.scanning.gate import Policy
from stockade.scanning.interface import ImageInfo, Inventory
from stockade.scanning.pipeline import Backend, ScanOptions
from stockade.scanning.registry_scan import render_walk, walk_registry, watch_registry
from stockade.scanning.results import DatabaseInfo
from stockade.scanning.scan_store import list_images, run_count
from tests.scanning.scan_support import sample_findings, sample_inventory

HOST = "127.0.0.1:5000"
D1, D2 = "sha256:" + "11" * 32, "sha256:" + "22" * 32


@dataclass
class MemoryRegistry:
    content: dict[str, dict[str, str]]  # repo -> tag -> digest

    def repositories(self) -> list[str]:
        return list(self.content)

    def tags(self, repository: str) -> list[str]:
        return list(self.content[repository])

    def manifest_digest(self, repository: str, tag: str) -> str:
        digest = self.content[repository][tag]
        if digest == "broken":
            raise ImageError("manifest unknown", subject=f"{repository}:{tag}")
        return digest


@dataclass
class Recorder:
    """Backend functions that record what the walk asked for."""

    registry: MemoryRegistry
    built: datetime = datetime(2026, 11, 26, tzinfo=UTC)
    catalogers: str = "dpkg@1,python@1"
    inventories: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)

    def backend(self) -> Backend:
        return Backend(
            check_db=lambda store, age, allow: DatabaseInfo(built=self.built, sources=("t",)),
            build_inventory=self._build,
            match=self._match,
            read_sbom=lambda path: pytest.fail("not used"),
            open_image=lambda ref, image: pytest.fail("not used"),
            catalogers_key=lambda: self.catalogers,
        )

    def _build(self, ref, store, observer, image, opened=None) -> Inventory:
        self.inventories.append(ref)
        repo, tag = ref.removeprefix(HOST + "/").rsplit(":", 1)
        digest = self.registry.content[repo][tag]
        base = sample_inventory()
        return replace(
            base,
            source=ref,
            read_layers=2,
            image=ImageInfo(reference=ref, name=f"{HOST}/{repo}", tag=tag, manifest_digest=digest),
        )

    def _match(self, store, inv):
        self.matches.append(inv.source)
        return sample_findings(), ()


def walk(store, rec: Recorder, registry: MemoryRegistry, patterns=(), poll=1, fail_on=None):
    return walk_registry(
        store,
        HOST,
        registry,
        patterns=patterns,
        options=ScanOptions(policy=Policy(fail_on=fail_on)),
        backend=rec.backend(),
        poll=poll,
    )


def test_each_digest_scanned_once_then_rematched_only_on_new_data(sqlite_store) -> None:
    reg = MemoryRegistry(
        content={"team/app": {"1.0": D1, "latest": D1, "2.0": D2}, "other/db": {"9": D2}}
    )
    rec = Recorder(reg)
    first = walk(sqlite_store, rec, reg, fail_on=Severity.CRITICAL)
    actions = {i.reference: i.action for i in first.items}
    assert actions == {
        f"{HOST}/other/db:9": "scanned",
        f"{HOST}/team/app:1.0": "scanned",
        f"{HOST}/team/app:2.0": "cached",  # D2 was read for other/db:9 already
        f"{HOST}/team/app:latest": "cached",
    }
    assert len(rec.inventories) == 2  # two digests, two reads
    assert first.failed

    second = walk(sqlite_store, rec, reg, poll=2, fail_on=Severity.HIGH)
    assert {i.action for i in second.items} == {"unchanged"}
    assert all(i.counts["critical"] == 1 and i.failed for i in second.items)  # last counts
    third_opinion = walk(sqlite_store, rec, reg, poll=2)
    assert not any(i.failed for i in third_opinion.items)  # no --fail-on now
    assert len(rec.inventories) == 2 and len(rec.matches) == 4

    rec.built += timedelta(days=1)  # `stockade db import` rebuilt the advisory data
    third = walk(sqlite_store, rec, reg, poll=3)
    assert {i.action for i in third.items} == {"rematched"}
    assert all(i.read_layers == 0 for i in third.items)
    assert len(rec.inventories) == 2  # no layer read again
    assert len(list_images(sqlite_store)) == 4
    assert run_count(sqlite_store, mode="rematched") == 4


def test_repo_glob_and_errors_are_reported(sqlite_store) -> None:
    reg = MemoryRegistry(content={"team/app": {"1.0": D1, "bad": "broken"}, "other/db": {"9": D2}})
    rec = Recorder(reg)
    w = walk(sqlite_store, rec, reg, patterns=("team/*",))
    assert [(i.reference.rsplit("/", 1)[1], i.action) for i in w.items] == [
        ("app:1.0", "scanned"),
        ("app:bad", "error"),
    ]
    assert "manifest unknown" in w.items[1].error and w.errors == 1
    text = render_walk([w], "table")
    assert "1 error, 1 scanned" in text and "manifest unknown" in text


def test_watch_picks_up_new_tags_and_is_bounded(sqlite_store) -> None:
    reg = MemoryRegistry(content={"team/app": {"1.0": D1}})
    rec = Recorder(reg)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        reg.content["team/app"]["1.1"] = D2  # a push between polls

    walks = watch_registry(
        sqlite_store,
        HOST,
        patterns=(),
        options=ScanOptions(),
        backend=rec.backend(),
        lister=reg,
        watch=True,
        interval=5,
        max_polls=3,
        sleep=sleep,
    )
    assert [w.tally() for w in walks] == [
        {"scanned": 1},
        {"unchanged": 1, "scanned": 1},
        {"unchanged": 2},
    ]
    assert sleeps == [5, 5]


def test_new_catalogers_read_the_image_again(sqlite_store) -> None:
    reg = MemoryRegistry(content={"team/app": {"1.0": D1}})
    rec = Recorder(reg)
    walk(sqlite_store, rec, reg)
    rec.catalogers = "dpkg@2,python@1"  # an upgraded cataloger: kept inventories are stale
    w = walk(sqlite_store, rec, reg, poll=2)
    assert [i.action for i in w.items] == ["scanned"] and len(rec.inventories) == 2
    assert [i.action for i in walk(sqlite_store, rec, reg, poll=3).items] == ["unchanged"]
