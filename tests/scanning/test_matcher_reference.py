"""The optimized matcher (bulk lookups, shared parsed ranges, the sqlite3 fast path, one walk per
finding) gives exactly the findings of the straightforward reference on generated corpora:
merged aliases, bundles, several ranges, last_affected and limit events, version lists, vendor
ratings, CVSS, references and compatible releases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    Cvss,
    EventKind,
    FixState,
    ImportBatch,
    VersionRange,
)
from stockade.scanning.advisories.store import fill_spans, write_batches
from stockade.scanning.advisory_tables import adv_affected, adv_meta, adv_spans, adv_vulnerabilities
from stockade.scanning.interface import Distro, Inventory, Package
from stockade.scanning.matcher import Matcher
from stockade.scanning.versions import dpkg, maven, scheme_for, semver
from stockade.store import Store
from tests.scanning.matching_reference import reference_findings

ECOSYSTEMS = {
    "debian:12": "deb",
    "pypi": "python",
    "npm": "npm",
    "maven": "java-archive",
    "go": "go-module",
}
VECTORS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
)


def _version(eco: str, r: random.Random) -> str:
    a, b, c = r.randint(0, 4), r.randint(0, 6), r.randint(0, 6)
    if eco == "debian:12":
        return r.choice((f"{a}.{b}.{c}-{r.randint(1, 3)}", f"{a}.{b}-{c}+deb12u{b}", f"1:{a}.{b}"))
    if eco == "go":
        return f"v{a}.{b}.{c}"
    return f"{a}.{b}.{c}" + (r.choice(("", "", "-rc1")) if eco == "npm" else "")


def _name(eco: str, i: int) -> str:
    if eco == "maven":
        return f"org.example:lib-{i}"
    if eco == "go":
        return f"example.com/mod-{i}"
    return f"pkg-{i}"


def _events(eco: str, r: random.Random) -> tuple[tuple[EventKind, str], ...]:
    scheme = scheme_for(eco)
    assert scheme is not None
    points = sorted({_version(eco, r) for _ in range(r.randint(1, 5))}, key=scheme.key)
    events: list[tuple[EventKind, str]] = [(EventKind.INTRODUCED, r.choice(("0", points[0])))]
    for v in points[1:]:
        kind = r.choice(
            (EventKind.FIXED, EventKind.FIXED, EventKind.LAST_AFFECTED, EventKind.LIMIT)
        )
        events.append((kind, v))
        if r.random() < 0.4:
            events.append((EventKind.INTRODUCED, v))
    return tuple(events)


def corpus(seed: int, records: int = 1500, names: int = 60) -> tuple[list[Advisory], Inventory]:
    r = random.Random(seed)
    universe = [(eco, _name(eco, i)) for eco in ECOSYSTEMS for i in range(names)]
    cves = [f"CVE-2024-{1000 + i}" for i in range(records // 2)]  # shared: records merge
    advisories = []
    for i in range(records):
        eco, name = r.choice(universe)
        ranges = tuple(
            VersionRange(
                type="SEMVER" if eco in ("npm", "go") else "ECOSYSTEM", events=_events(eco, r)
            )
            for _ in range(r.choice((1, 1, 2)))
        )
        fixed = next((v for k, v in reversed(ranges[-1].events) if k == EventKind.FIXED), None)
        affected = Affected(
            ecosystem=eco,
            package=name,
            fix_state=FixState.FIXED
            if fixed
            else r.choice((FixState.NOT_FIXED, FixState.WONT_FIX)),
            fixed_version=fixed,
            ranges=ranges,
            versions=tuple(_version(eco, r) for _ in range(r.choice((0, 0, 2)))),
            severity=r.choice((None, "low", "high", "unimportant")) if eco == "debian:12" else None,
        )
        bundle = eco == "debian:12" and r.random() < 0.1
        advisories.append(
            Advisory(
                id=f"DSA-{i}-1"
                if bundle
                else r.choice((r.choice(cves), f"GHSA-{i:04x}-test-case")),
                source=r.choice(("osv", "debian-tracker", "ghsa")),
                aliases=() if bundle else tuple(r.sample(cves, r.choice((0, 1, 2)))),
                upstream=tuple(r.sample(cves, 3)) if bundle else (),
                summary=r.choice(("", f"problem {i}\nmore")),
                severity=r.choice((None, "HIGH", "moderate")),
                cvss=(
                    Cvss(version="3.1", vector=r.choice(VECTORS), score=r.choice((9.8, 5.5, 5.5))),
                )
                if r.random() < 0.6
                else (),
                references=tuple(
                    f"https://example.com/{i}/{j}" for j in range(r.choice((0, 3, 12)))
                ),
                affected=(affected,),
            )
        )
    packages = []
    for _ in range(names * 6):
        eco, name = r.choice(universe)
        packages.append(Package(type=ECOSYSTEMS[eco], name=name, version=_version(eco, r)))
    packages.append(Package(type="python", name="pkg-1", version="not a version!"))
    inventory = Inventory(
        source="generated", distro=Distro(id="debian", version_id="12"), packages=tuple(packages)
    )
    return advisories, inventory


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matcher_gives_the_reference_findings(any_store: Store, seed: int) -> None:
    advisories, inventory = corpus(seed)
    write_batches(any_store, [ImportBatch(source="generated", kind="osv", advisories=advisories)])
    fast = [f.to_dict() for f in Matcher(any_store).run(inventory).findings]
    slow = [f.to_dict() for f in reference_findings(any_store, inventory)]
    assert len(fast) > 200  # the corpus exercises matching, not just empty lists
    assert any(len(f["details"]["aliases"]) >= 2 for f in fast)  # merged records
    assert fast == slow


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6))
def test_dpkg_numeric_parts_take_the_fast_path_with_the_same_key(numbers: list[int]) -> None:
    text = ".".join(str(n) for n in numbers)
    assert dpkg.part_key(text) == dpkg._runs_key(text)
    padded = ".".join(f"{n:03d}" for n in numbers)  # leading zeros compare as numbers
    assert dpkg.part_key(padded) == dpkg._runs_key(padded)


@given(st.text(alphabet="0123456789.+~-abz:", max_size=12))
def test_dpkg_part_keys_agree_on_any_text(text: str) -> None:
    assert dpkg.part_key(text) == dpkg._runs_key(text)


def test_a_stored_row_with_a_bad_version_is_skipped_by_name_and_the_rest_still_match(
    any_store: Store,
) -> None:
    """Rows an older importer stored with a version its scheme now rejects: the matcher names the
    advisory and package in ``skipped`` (once, however many packages read it) and keeps matching
    the package's other rows (their ranges read apart from the span query, on either database)."""

    def record(ident: str, fixed: str) -> Advisory:
        return Advisory(
            id=ident,
            source="osv",
            summary="s",
            affected=(
                Affected(
                    ecosystem="pypi",
                    package="pkg-a",
                    fix_state=FixState.FIXED,
                    fixed_version=fixed,
                    ranges=(
                        VersionRange(
                            type="ECOSYSTEM",
                            events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, fixed)),
                        ),
                    ),
                ),
            ),
        )

    write_batches(
        any_store,
        [
            ImportBatch(
                source="g",
                kind="osv",
                advisories=[
                    record("GHSA-good-good-good", "2.0"),
                    record("GHSA-bad0-bad0-bad0", "3.0"),
                ],
            )
        ],
    )
    with any_store.begin() as conn:
        pk = conn.execute(
            select(adv_vulnerabilities.c.pk).where(
                adv_vulnerabilities.c.vuln_id == "GHSA-bad0-bad0-bad0"
            )
        ).scalar_one()
        bad = json.dumps([["ECOSYSTEM", [["introduced", "0"], ["fixed", "not a version!"]]]])
        conn.execute(update(adv_affected).where(adv_affected.c.vuln_pk == pk).values(ranges=bad))
        fill_spans(conn)  # as the store's migration computes them for rows an older tree stored
    inventory = Inventory(
        source="x",
        packages=(
            Package(type="python", name="pkg-a", version="1.0"),
            Package(type="python", name="pkg-a", version="1.5"),
        ),
    )
    report = Matcher(any_store).run(inventory)
    assert [f.id for f in report.findings] == ["GHSA-good-good-good"] * 2
    bad_lines = [s for s in report.skipped if "GHSA-bad0-bad0-bad0" in s]
    assert len(bad_lines) == 1 and "pkg-a" in bad_lines[0] and "invalid pep440" in bad_lines[0]


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6))
def test_maven_dotted_numbers_take_the_fast_path_with_the_same_key(numbers: list[int]) -> None:
    for text in (".".join(str(n) for n in numbers), ".".join(f"{n:03d}" for n in numbers)):
        for suffix in ("", ".Final", ".GA", ".RELEASE"):
            v = (text + suffix).lower()
            assert maven.parse(text + suffix).items == maven._parse_tokens(text + suffix, v).items


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=3, max_size=3))
def test_semver_plain_versions_take_the_fast_path_with_the_same_key(numbers: list[int]) -> None:
    for text in (".".join(str(n) for n in numbers), ".".join(f"{n:03d}" for n in numbers)):
        assert semver.parse(text) == semver._parse_match("semver", text)


def test_a_store_imported_before_the_spans_gets_them_at_its_first_match(tmp_path: Path) -> None:
    """A store whose records an older tree imported (schema at advisories_0002, no adv_spans)
    gets every row's spans before its first match (its migration leaves a marker), and matches
    exactly as a fresh import does."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from stockade.store import open_store
    from stockade.store.db import _alembic_config

    advisories, inventory = corpus(2)
    fresh = open_store(f"sqlite:///{tmp_path / 'fresh.db'}")
    write_batches(fresh, [ImportBatch(source="generated", kind="osv", advisories=advisories)])
    want = [f.to_dict() for f in Matcher(fresh).run(inventory).findings]
    with fresh.connect() as conn:
        spans = conn.execute(select(adv_spans.c.affected_pk, adv_spans.c.seq)).all()
    fresh.close()

    old = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "advisories_0002")
        conn.execute(text(f"ATTACH DATABASE '{tmp_path / 'fresh.db'}' AS fresh"))
        conn.execute(  # without the columns later revisions added
            text(
                "INSERT INTO adv_sources SELECT id, name, kind, imported_at, records, problems"
                " FROM fresh.adv_sources"
            )
        )
        for table in ("adv_vulnerabilities", "adv_affected", "adv_meta"):
            conn.execute(text(f"INSERT INTO {table} SELECT * FROM fresh.{table}"))
    engine.dispose()
    migrated = open_store(f"sqlite:///{old}")
    try:
        with migrated.connect() as conn:  # the migration leaves the marker, not the spans
            assert conn.execute(select(adv_spans.c.seq)).first() is None
            marker = select(adv_meta.c.value).where(adv_meta.c.key == "spans")
            assert conn.execute(marker).scalar() == "pending"
        assert [f.to_dict() for f in Matcher(migrated).run(inventory).findings] == want
        with migrated.connect() as conn:
            got = conn.execute(select(adv_spans.c.affected_pk, adv_spans.c.seq)).all()
            assert conn.execute(marker).scalar() is None
        assert sorted(got) == sorted(spans) and len(spans) > 1000
        assert [f.to_dict() for f in Matcher(migrated).run(inventory).findings] == want
    finally:
        migrated.close()


def test_findings_built_through_the_slot_constructor_equal_the_dataclass_ones() -> None:
    """``match_findings`` fills the slots of Finding and VulnerabilityDetails directly: the objects
    equal those the dataclasses' own constructors build, every field is required, and a class
    with ``__post_init__`` is refused."""
    from dataclasses import dataclass

    from stockade.model import Finding, Pillar, ResourceRef, Severity
    from stockade.model.finding import Status
    from stockade.model.slots import slot_constructor
    from stockade.scanning.interface import VulnerabilityDetails

    details = {
        "package": "openssl",
        "package_type": "deb",
        "installed_version": "3.0.11-1",
        "fixed_version": "3.0.13-1",
        "fix_state": "fixed",
        "aliases": ("GHSA-xxxx-yyyy-zzzz",),
        "cvss_score": 7.5,
        "cvss_vector": VECTORS[0],
        "purl": "pkg:deb/debian/openssl@3.0.11-1",
        "locations": ("/var/lib/dpkg/status",),
        "layer": "sha256:abc",
        "data_source": "debian-tracker",
        "urls": ("https://example.test/CVE-2024-0001",),
    }
    finding = {
        "id": "CVE-2024-0001",
        "pillar": Pillar.SCANNING,
        "title": "t",
        "severity": Severity.HIGH,
        "resource": ResourceRef(kind="image", name="x"),
        "status": Status.FAIL,
        "compliance": (),
    }
    fast = slot_constructor(Finding)(
        **finding, details=slot_constructor(VulnerabilityDetails)(**details)
    )
    slow = Finding(**finding, details=VulnerabilityDetails(**details))
    assert fast == slow and fast.to_dict() == slow.to_dict() and hash(fast) == hash(slow)
    with pytest.raises(TypeError):
        slot_constructor(VulnerabilityDetails)(**{k: v for k, v in details.items() if k != "urls"})

    @dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            assert self.n >= 0

    with pytest.raises(TypeError):
        slot_constructor(Checked)


_ids = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["CVE-", "GHSA-", "PYSEC-", "DSA-", "", "cve-"]),
    st.text(max_size=12),
)


@given(st.lists(st.text(max_size=20), max_size=3), st.booleans())
def test_stored_string_lists_decode_as_json_does(items: list[str], ascii_only: bool) -> None:
    """``json_strings`` reads a list of one plain string without the JSON parser: the same
    strings, whatever the list holds (quotes, escapes, control characters, non-ASCII)."""
    from stockade.scanning.match_eval import json_strings

    text = json.dumps(items, ensure_ascii=ascii_only)
    assert json_strings(text) == tuple(json.loads(text))
    assert json_strings(json.dumps(items, separators=(",", ":"))) == tuple(items)


@given(_ids, _ids)
def test_the_primary_id_of_a_record_and_its_alias_is_chosen_as_for_any_set(a: str, b: str) -> None:
    from stockade.scanning.match_findings import _primary, _primary_of_two

    if a != b:
        assert _primary_of_two(a, b) == _primary({a, b}) == _primary_of_two(b, a)


def test_rows_an_older_tree_stored_are_refreshed_at_the_first_match(tmp_path: Path) -> None:
    """A store imported before apk's leading-zero order and before CVSS v4 scores kept what that
    tree computed: spans keyed as if 4.09-r1 were 4.9-r1 (so 4.5.14-r0 matched) and a v4-only
    record without a score. The migration leaves markers; the first match sorts and keys the apk
    rows again and scores the v4 record, and matches as a fresh import does."""
    from sqlalchemy import text

    from stockade.model import Severity
    from stockade.scanning.advisories.spans import Span
    from stockade.scanning.advisories.store import _insert_spans
    from stockade.scanning.versions import SCHEMES
    from stockade.scanning.versions.sortable import sortable_key
    from stockade.store import open_store

    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    advisories = [
        Advisory(
            id="CVE-2099-0001",
            source="alpine-secdb",
            affected=(
                Affected(
                    ecosystem="alpine:3.19",
                    package="perl-example",
                    ranges=(
                        VersionRange(
                            type="ECOSYSTEM",
                            events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, "4.09-r1")),
                        ),
                    ),
                    fix_state=FixState.FIXED,
                    fixed_version="4.09-r1",
                ),
            ),
        ),
        Advisory(
            id="CVE-2099-0002",
            source="osv",
            cvss=(Cvss(version="4.0", vector=v4, score=9.3),),
            affected=(
                Affected(
                    ecosystem="alpine:3.19",
                    package="musl-example",
                    ranges=(
                        VersionRange(
                            type="ECOSYSTEM",
                            events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, "1.2.5-r1")),
                        ),
                    ),
                    fix_state=FixState.FIXED,
                    fixed_version="1.2.5-r1",
                ),
            ),
        ),
    ]
    inventory = Inventory(
        source="alpine",
        distro=Distro(id="alpine", version_id="3.19.1"),
        packages=tuple(
            Package(type="apk", name=n, version=v, source_name=n)
            for n, v in (
                ("perl-example", "4.5.14-r0"),
                ("perl-example", "4.08-r0"),
                ("musl-example", "1.2.5-r0"),
            )
        ),
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    write_batches(store, [ImportBatch(source="s", kind="mixed", advisories=advisories)])
    want = {
        (f.details.installed_version, f.id, f.severity)
        for f in Matcher(store).run(inventory).findings
    }
    assert want == {
        ("4.08-r0", "CVE-2099-0001", Severity.UNKNOWN),
        ("1.2.5-r0", "CVE-2099-0002", Severity.CRITICAL),
    }
    with store.begin() as conn:  # what the older tree stored
        (pk,) = conn.execute(
            select(adv_affected.c.pk).where(adv_affected.c.package == "perl-example")
        ).one()
        conn.execute(adv_spans.delete().where(adv_spans.c.affected_pk == pk))
        old_key = sortable_key(SCHEMES["apk"], "4.9-r1")
        _insert_spans(
            conn,
            [
                (
                    pk,
                    1,
                    "alpine:3.19",
                    "perl-example",
                    *Span(0, None, False, old_key, False, None, "4.09-r1"),
                )
            ],
        )
        conn.execute(
            update(adv_vulnerabilities)
            .where(adv_vulnerabilities.c.vuln_id == "CVE-2099-0002")
            .values(
                cvss_vector=None,
                cvss_score=None,
                cvss_extra=json.dumps([{"version": "4.0", "vector": v4, "score": None}]),
            )
        )
        conn.execute(text("ALTER TABLE adv_sources DROP COLUMN reimport"))  # s17vuln_0001's
        conn.execute(
            text(
                "UPDATE alembic_version SET version_num = 's7match_0001'"
                " WHERE version_num = 's17vuln_0001'"
            )
        )
    stale = {
        (f.details.installed_version, f.id, f.severity)
        for f in Matcher(store).run(inventory).findings
    }
    assert stale == {
        ("4.5.14-r0", "CVE-2099-0001", Severity.UNKNOWN),
        ("4.08-r0", "CVE-2099-0001", Severity.UNKNOWN),
        ("1.2.5-r0", "CVE-2099-0002", Severity.UNKNOWN),
    }
    store.close()

    store = open_store(url)  # the migration leaves its markers
    try:
        with store.connect() as conn:
            markers = dict(conn.execute(select(adv_meta.c.key, adv_meta.c.value)).all())
        assert markers["spans"] == "apk" and markers["cvss"] == "pending"
        got = {
            (f.details.installed_version, f.id, f.severity)
            for f in Matcher(store).run(inventory).findings
        }
        assert got == want
        with store.connect() as conn:
            markers = dict(conn.execute(select(adv_meta.c.key, adv_meta.c.value)).all())
        assert "spans" not in markers and "cvss" not in markers
        assert markers["generation"] != "" and markers["generation"] is not None
    finally:
        store.close()
