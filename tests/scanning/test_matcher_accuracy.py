"""Matching accuracy on inventories of real package versions against real advisory records:
every expected finding present, nothing unexpected, with the right fix state, fixed version,
merged aliases and severity."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from stockade.model import Pillar, Severity
from stockade.scanning.advisories.update import import_sources
from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package, VulnerabilityDetails
from stockade.scanning.matcher import Matcher, match
from stockade.store import Store

DATA = Path(__file__).parent / "data" / "advisories"


@pytest.fixture
def loaded(sqlite_store: Store, advisories_dir: Path, go_vulndb: list[Path]) -> Store:
    import_sources(
        sqlite_store,
        [
            str(advisories_dir / "osv-samples"),
            str(advisories_dir / "debian-tracker"),
            str(advisories_dir / "alpine-secfixes"),
            *(str(d) for d in go_vulndb),
        ],
    )
    return sqlite_store


def _summary(findings) -> dict[tuple[str, str, str], tuple]:
    out = {}
    for f in findings:
        d = f.details
        assert isinstance(d, VulnerabilityDetails) and f.pillar == Pillar.SCANNING
        out[(d.package, d.installed_version, f.id)] = (d.fix_state, d.fixed_version, d.aliases)
    return out


def _pkg(type_: str, name: str, version: str, **kw: str) -> Package:
    meta = tuple(kw.pop("meta", {}).items()) if "meta" in kw else ()
    return Package(type=type_, name=name, version=version, metadata=meta, **kw)


def test_language_packages(loaded: Store) -> None:
    inv = Inventory(
        source="test:languages",
        packages=(
            _pkg("python", "Requests", "2.30.0"),
            _pkg("python", "requests", "2.31.0"),  # fixed
            _pkg("python", "requests", "2.2.1"),  # before introduced 2.3.0
            _pkg("python", "cryptography", "3.2.1"),
            _pkg("python", "cryptography", "3.1.2"),  # fixed in the first range, below the second
            _pkg(
                "python", "Products.PluggableAuthService", "2.6.0"
            ),  # PEP 503: products-pluggableauthservice
            _pkg("python", "gradio", "4.36.1"),  # explicit versions list, no fix known
            _pkg("npm", "jquery", "2.2.4"),
            _pkg("npm", "jquery", "1.12.4"),  # below introduced 2.1.1-0
            _pkg(
                "java-archive", "xwiki-commons-core", "12.10.1", meta={"group": "org.xwiki.commons"}
            ),
            _pkg("java-archive", "org.xwiki.commons:xwiki-commons-core", "12.8"),  # between ranges
            _pkg(
                "java-archive",
                "xwiki-commons-core",
                "11.10.12",
                meta={"maven-group": "org.xwiki.commons"},  # as the Java cataloger writes it
            ),
            Package(
                type="java-archive",
                name="xwiki-commons-core",
                version="11.6.1",
                purl="pkg:maven/org.xwiki.commons/xwiki-commons-core@11.6.1",
            ),
            _pkg("go-module", "github.com/gin-gonic/gin", "v1.5.0"),
            _pkg("go-module", "github.com/gin-gonic/gin", "v1.6.0"),
            _pkg("go-module", "github.com/tidwall/gjson", "v1.6.5"),
            _pkg("go-module", "github.com/beego/beego/v2", "v2.0.3"),
            _pkg("go-module", "golang.org/x/text", "v0.3.6"),
            _pkg("go-module", "stdlib", "go1.4.2"),
            _pkg("gem", "rails", "4.0.0"),  # checked: no record names it
            # GHSA-9qj7-jvg4-qr2x (RubyGems): two ranges written in one event list
            _pkg("gem", "passenger", "3.0.20"),
            _pkg("gem", "passenger", "3.0.21"),
            _pkg("gem", "passenger", "4.0.2"),
            _pkg("gem", "passenger", "4.0.5"),
        ),
    )
    report = Matcher(loaded).run(inv)
    got = _summary(report.findings)
    assert got == {
        ("Requests", "2.30.0", "CVE-2023-32681"): (
            "fixed",
            "2.31.0",
            ("GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"),
        ),
        ("cryptography", "3.2.1", "CVE-2020-36242"): ("fixed", "3.3.2", ("PYSEC-2021-63",)),
        ("Products.PluggableAuthService", "2.6.0", "CVE-2021-21337"): (
            "fixed",
            "2.6.1",
            ("GHSA-p44j-xrqg-4xrr",),
        ),
        ("gradio", "4.36.1", "CVE-2024-39236"): ("not-fixed", None, ("GHSA-9v2f-6vcg-3hgv",)),
        ("jquery", "2.2.4", "CVE-2016-10707"): ("fixed", "3.0.0", ("GHSA-mhpp-875w-9cpv",)),
        ("xwiki-commons-core", "12.10.1", "CVE-2021-32620"): (
            "fixed",
            "12.10.2",
            ("GHSA-76mp-659p-rw65",),
        ),
        ("xwiki-commons-core", "11.10.12", "CVE-2021-32620"): (
            "fixed",
            "11.10.13",
            ("GHSA-76mp-659p-rw65",),
        ),
        ("xwiki-commons-core", "11.6.1", "CVE-2021-32620"): (
            "fixed",
            "11.10.13",
            ("GHSA-76mp-659p-rw65",),
        ),
        ("github.com/gin-gonic/gin", "v1.5.0", "CVE-2020-36567"): (
            "fixed",
            "1.6.0",
            ("GHSA-6vm3-jj99-7229", "GO-2020-0001"),
        ),
        ("github.com/tidwall/gjson", "v1.6.5", "CVE-2020-36067"): (
            "fixed",
            "1.6.6",
            ("GO-2021-0054",),
        ),
        ("github.com/tidwall/gjson", "v1.6.5", "CVE-2020-36066"): (
            "fixed",
            "1.9.3",
            ("CVE-2021-42836", "GHSA-ppj4-34rq-v8j9", "GHSA-wjm3-fq3r-5x46", "GO-2021-0265"),
        ),
        ("github.com/tidwall/gjson", "v1.6.5", "CVE-2021-42248"): (
            "fixed",
            "1.9.3",
            ("GHSA-c9gm-7rfj-8w5h", "GO-2022-0592"),
        ),
        ("github.com/beego/beego/v2", "v2.0.3", "CVE-2022-31836"): (
            "fixed",
            "2.0.4",
            ("GHSA-95f9-94vc-665h", "GO-2022-0569"),
        ),
        ("golang.org/x/text", "v0.3.6", "CVE-2021-38561"): ("fixed", "0.3.7", ("GO-2021-0113",)),
        # GO-2021-0157 and GO-2021-0159 share CVE-2015-5739: one finding carrying every id.
        ("stdlib", "go1.4.2", "CVE-2015-5739"): (
            "fixed",
            "1.4.3",
            ("CVE-2015-5740", "CVE-2015-5741", "GO-2021-0157", "GO-2021-0159"),
        ),
        ("stdlib", "go1.4.2", "CVE-2024-24791"): ("fixed", "1.21.12", ("GO-2024-2963",)),
        ("passenger", "3.0.20", "CVE-2013-2119"): ("fixed", "3.0.21", ("GHSA-9qj7-jvg4-qr2x",)),
        ("passenger", "4.0.2", "CVE-2013-2119"): ("fixed", "4.0.5", ("GHSA-9qj7-jvg4-qr2x",)),
    }
    assert not any("rails" in s for s in report.skipped)
    by_id = {f.id: f for f in report.findings}
    assert (
        by_id["CVE-2024-39236"].severity == Severity.CRITICAL
    )  # CVSS 9.8 computed from the vector
    assert by_id["CVE-2024-39236"].details.cvss_score == 9.8
    assert by_id["CVE-2023-32681"].details.data_source == "osv:pypi"


def test_os_packages_debian(loaded: Store) -> None:
    inv = Inventory(
        source="docker-archive:debian.tar",
        image=ImageInfo(reference="debian.tar", manifest_digest="sha256:" + "a" * 64),
        distro=Distro(id="debian", version_id="12", version_codename="bookworm"),
        packages=(
            Package(
                type="deb",
                name="libapparmor1",
                version="2.10-1",
                source_name="apparmor",
                source_version="2.10-1",
            ),
            Package(type="deb", name="apparmor", version="3.0.8-3"),
            Package(
                type="deb", name="openssl", version="1.0.2g-1"
            ),  # no Debian data for openssl here
        ),
    )
    got = _summary(match(inv, loaded))
    assert got == {
        ("libapparmor1", "2.10-1", "CVE-2016-1585"): ("not-fixed", None, ()),
        ("libapparmor1", "2.10-1", "CVE-2017-6507"): ("fixed", "2.11.0-3", ()),
        ("apparmor", "3.0.8-3", "CVE-2016-1585"): ("not-fixed", None, ()),
    }
    f = next(f for f in match(inv, loaded) if f.id == "CVE-2016-1585")
    assert f.severity == Severity.NEGLIGIBLE  # Debian urgency "unimportant"
    assert f.resource.digest == "sha256:" + "a" * 64


def test_os_packages_alpine(loaded: Store) -> None:
    inv = Inventory(
        source="alpine",
        distro=Distro(id="alpine", version_id="3.4.6"),
        packages=(
            Package(type="apk", name="libssl1.0", version="1.0.2g-r0", source_name="openssl"),
            Package(type="apk", name="libcrypto1.0", version="1.0.2r-r0", source_name="openssl"),
        ),
    )
    got = _summary(match(inv, loaded))
    assert got == {
        ("libssl1.0", "1.0.2g-r0", "CVE-2016-2176"): ("fixed", "1.0.2h-r0", ()),
        ("libssl1.0", "1.0.2g-r0", "CVE-2018-5407"): ("fixed", "1.0.2q-r0", ()),
    }
    # The same versions on another release use that release's records only.
    other = Inventory(
        source="a", distro=Distro(id="alpine", version_id="3.2.0"), packages=inv.packages
    )
    assert {k[2] for k in _summary(match(other, loaded))} == {"CVE-2016-2176"}


def test_unknown_distro_and_bad_versions_are_skipped_with_reasons(loaded: Store) -> None:
    inv = Inventory(
        source="x",
        packages=(
            Package(type="deb", name="apparmor", version="2.10-1"),
            Package(type="python", name="requests", version="not a version"),
            Package(type="java-archive", name="bare-artifact", version="1.0"),
        ),
    )
    report = Matcher(loaded).run(inv)
    assert report.findings == ()
    text = "\n".join(report.skipped)
    assert "unknown distribution" in text and "invalid pep440 version" in text and "groupId" in text


def test_debian_advisory_bundles_join_their_cves(
    sqlite_store: Store, advisories_dir: Path, tmp_path: Path
) -> None:
    """The real DLA-3623-1 record (linux, 44 upstream CVEs) with an affected entry added in the
    shape Debian's OSV records use, next to tracker entries for two of its CVEs."""
    dla = json.loads((advisories_dir / "osv-samples" / "DLA-3623-1.json").read_text())
    dla["affected"] = [
        {
            "package": {"ecosystem": "Debian:10", "name": "linux"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.19.289-2"}]}
            ],
        }
    ]
    (tmp_path / "dla.json").write_text(json.dumps(dla))
    tracker = {
        "linux": {
            cve: {
                "releases": {
                    "buster": {
                        "status": "resolved",
                        "fixed_version": "4.19.289-1",
                        "urgency": "high",
                    }
                }
            }
            for cve in ("CVE-2023-4004", "CVE-2023-3609")
        }
    }
    (tmp_path / "tracker.json").write_text(json.dumps(tracker))
    inv = Inventory(
        source="buster",
        distro=Distro(id="debian", version_id="10"),
        packages=(
            Package(
                type="deb", name="linux-image-amd64", version="4.19.260-1", source_name="linux"
            ),
        ),
    )
    import_sources(sqlite_store, [str(tmp_path / "dla.json")])
    (alone,) = match(inv, sqlite_store)
    assert alone.id == "DLA-3623-1" and len(alone.details.aliases) == 44
    import_sources(sqlite_store, [str(tmp_path / "tracker.json")])
    got = _summary(match(inv, sqlite_store))
    assert got == {
        ("linux-image-amd64", "4.19.260-1", "CVE-2023-4004"): (
            "fixed",
            "4.19.289-2",
            ("DLA-3623-1",),
        ),
        ("linux-image-amd64", "4.19.260-1", "CVE-2023-3609"): (
            "fixed",
            "4.19.289-2",
            ("DLA-3623-1",),
        ),
    }
    assert {f.severity for f in match(inv, sqlite_store)} == {Severity.HIGH}


def test_matching_on_both_databases(any_store: Store, advisories_dir: Path) -> None:
    import_sources(
        any_store, [str(advisories_dir / "osv-samples"), str(advisories_dir / "debian-tracker")]
    )
    inv = Inventory(
        source="both",
        distro=Distro(id="debian", version_id="12"),
        packages=(
            _pkg("python", "requests", "2.30.0"),
            Package(type="deb", name="apparmor", version="2.10-1"),
        ),
    )
    got = _summary(match(inv, any_store))
    assert set(got) == {
        ("requests", "2.30.0", "CVE-2023-32681"),
        ("apparmor", "2.10-1", "CVE-2016-1585"),
        ("apparmor", "2.10-1", "CVE-2017-6507"),
    }


def test_lookup_targets_follow_the_catalogers() -> None:
    from stockade.scanning.matcher import Target, target_for

    deb = Package(
        type="deb",
        name="libssl3",
        version="3.0.11-1~deb12u2+b1",
        source_name="openssl",
        source_version="3.0.11-1~deb12u2",
    )
    rpm = Package(
        type="rpm",
        name="bash",
        version="5.1.8-6.el9",
        source_name="bash",
        metadata=(("epoch", "1"),),
    )
    apk = Package(type="apk", name="libcrypto3", version="3.1.4-r0", source_name="openssl")
    py = Package(type="python", name="Zope.Interface", version="6.0")
    got = {p.type: target_for(p, "x:1") for p in (deb, rpm, apk, py)}
    assert all(isinstance(t, Target) for t in got.values())
    assert (got["deb"].name, got["deb"].version) == ("openssl", "3.0.11-1~deb12u2")
    assert (got["rpm"].name, got["rpm"].version) == ("bash", "1:5.1.8-6.el9")
    assert (got["apk"].name, got["apk"].version) == ("openssl", "3.1.4-r0")
    assert (got["python"].ecosystem, got["python"].name) == ("pypi", "zope-interface")


def test_releases_and_ecosystems_without_data_are_reported_unchecked(loaded: Store) -> None:
    from stockade.scanning.interface import Unchecked

    deb = Package(type="deb", name="apparmor", version="2.10-1")
    others = (
        Package(type="python", name="requests", version="2.30.0"),  # pypi has data
        Package(type="gem", name="rails", version="7.0.0"),  # rubygems has data: checked
        Package(type="binary", name="busybox", version="1.36"),  # no ecosystem at all
    )
    # the samples have no record for jessie (8); bookworm (12) has them
    inv = Inventory(
        source="x", distro=Distro(id="debian", version_id="8"), packages=(deb, deb, *others)
    )
    report = Matcher(loaded).run(inv)
    assert report.unchecked == (
        Unchecked(ecosystem="binary", packages=1, reason="package type 'binary' has no advisory ecosystem"),
        Unchecked(ecosystem="debian:8", packages=2, reason="no advisory data for debian:8 in the store"),
    )  # fmt: skip
    assert report.checked == 2 and {f.id for f in report.findings} >= {"CVE-2023-32681"}
    bookworm = Inventory(source="x", distro=Distro(id="debian", version_id="12"), packages=(deb,))
    assert Matcher(loaded).run(bookworm).unchecked == ()
    nodistro = Matcher(loaded).run(Inventory(source="x", packages=(deb,)))
    assert [(u.ecosystem, u.packages) for u in nodistro.unchecked] == [
        ("deb (unknown distribution)", 1)
    ]


ECOSYSTEM_DATA = Path(__file__).resolve().parent / "data" / "ecosystems"


def test_a_cvss_v2_score_is_rated_on_the_v2_scale(sqlite_store: Store, tmp_path: Path) -> None:
    """A record whose only CVSS is a v2 vector (older NVD-derived OSV records) is rated as NVD
    rates v2 scores: 10.0 is high, not critical (it was critical, through the v3 bands); a v3
    vector next to it still decides."""
    record = {
        "id": "PYSEC-2099-1",
        "modified": "2024-01-01T00:00:00Z",
        "aliases": ["CVE-2099-1001"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "oldlib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                ],
            }
        ],
        "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}],
    }
    both = {
        **record,
        "id": "PYSEC-2099-2",
        "aliases": ["CVE-2099-1002"],
        "severity": [
            {"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
        ],
    }
    # Two records of one vulnerability (aliases): the v3 score of one outranks the v2 10.0 of
    # the other.
    merged = {**record, "id": "GHSA-2099-0003", "aliases": ["CVE-2099-1003"]}
    other = {
        **both,
        "id": "PYSEC-2099-3",
        "aliases": ["CVE-2099-1003", "GHSA-2099-0003"],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    }
    (tmp_path / "v2.json").write_text(json.dumps([record, both, merged, other]))
    import_sources(sqlite_store, [str(tmp_path / "v2.json")])
    inv = Inventory(
        source="dir:/app", packages=(Package(type="python", name="oldlib", version="1.0"),)
    )
    got = {(f.id, f.severity, f.details.cvss_score) for f in match(inv, sqlite_store)}
    assert got == {
        ("CVE-2099-1001", Severity.HIGH, 10.0),
        ("CVE-2099-1002", Severity.CRITICAL, 9.8),
        ("CVE-2099-1003", Severity.HIGH, 7.5),
    }


def test_a_cvss_v4_only_record_is_rated_from_its_base_score(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """GHSA and NVD publish many records with a CVSS v4 vector only: they get the v4 base
    score and its rating (they were "unknown"); a record with both v3 and v4 is headed by v4
    (the newest version, as before), and the SARIF and gate see the same score."""
    from stockade.scanning.gate import Policy, Target, apply_policy
    from stockade.scanning.reports.sarif import security_severity

    v4_only = {
        "id": "GHSA-2099-0004",
        "modified": "2025-01-01T00:00:00Z",
        "aliases": ["CVE-2099-1004"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "newlib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                ],
            }
        ],
        # Log4Shell's vector on FIRST's examples page: 9.3, critical
        "severity": [
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            }
        ],
    }
    threat = {  # a vendor's E:U lowers the threat score (6.6), not the base one (8.7)
        **v4_only,
        "id": "GHSA-2099-0005",
        "aliases": ["CVE-2099-1005"],
        "severity": [
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N/E:U",
            }
        ],
    }
    both = {
        **v4_only,
        "id": "GHSA-2099-0006",
        "aliases": ["CVE-2099-1006"],
        "severity": [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N",
            },
        ],
    }
    (tmp_path / "v4.json").write_text(json.dumps([v4_only, threat, both]))
    import_sources(sqlite_store, [str(tmp_path / "v4.json")])
    inv = Inventory(
        source="dir:/app", packages=(Package(type="python", name="newlib", version="1.0"),)
    )
    findings = match(inv, sqlite_store)
    got = {(f.id, f.severity, f.details.cvss_score) for f in findings}
    assert got == {
        ("CVE-2099-1004", Severity.CRITICAL, 9.3),
        ("CVE-2099-1005", Severity.HIGH, 8.7),
        ("CVE-2099-1006", Severity.MEDIUM, 5.1),
    }
    gated = apply_policy(findings, Policy(fail_on=Severity.CRITICAL), Target())
    assert sorted(security_severity(g) for g in gated.findings) == [5.1, 8.7, 9.3]
    assert [g.finding.id for g in gated.failing] == ["CVE-2099-1004"]


def test_alpine_versions_with_leading_zeros_compare_as_apk_does(
    any_store: Store, tmp_path: Path
) -> None:
    """apk compares a component after the first with a leading zero as a decimal fraction
    (4.09 < 4.5.14, apk-tools' test data): a secdb fix at 4.09-r1 does not reach 4.5.14-r0
    (reported before as affected), and reaches 4.08-r0; on both databases."""
    secdb = {
        "distroversion": "v3.19",
        "reponame": "main",
        "archs": ["x86_64"],
        "urlprefix": "https://dl-cdn.alpinelinux.org/alpine",
        "apkurl": "{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
        "packages": [
            {"pkg": {"name": "perl-example", "secfixes": {"4.09-r1": ["CVE-2099-0001"]}}},
            {"pkg": {"name": "vim", "secfixes": {"8.2.002-r0": ["CVE-2099-0002"]}}},
        ],
    }
    (tmp_path / "main.json").write_text(json.dumps(secdb))
    import_sources(any_store, [str(tmp_path / "main.json")])
    apk = [
        ("perl-example", "4.5.14-r0"),  # above the fix
        ("perl-example", "4.08-r0"),  # below it
        ("perl-example", "4.09-r1"),  # the fix
        ("vim", "8.2.0015-r0"),  # 0.0015 < 0.002: below the fix
        ("vim", "8.2.01-r0"),  # above it
    ]
    inv = Inventory(
        source="alpine",
        distro=Distro(id="alpine", version_id="3.19.1"),
        packages=tuple(Package(type="apk", name=n, version=v, source_name=n) for n, v in apk),
    )
    got = {(f.details.package, f.details.installed_version, f.id) for f in match(inv, any_store)}
    assert got == {
        ("perl-example", "4.08-r0", "CVE-2099-0001"),
        ("vim", "8.2.0015-r0", "CVE-2099-0002"),
    }


def _listed_twice(path: str) -> list[dict]:
    """One Alpine id listed under two fixed versions of a package, in the shape of ``path``:
    "secdb" (the published secdb), "parts" (osv.dev's converter parts, one per listing), "osv"
    (an osv.dev record, one affected entry per listing) or "osv-ranges" (one entry, a range per
    listing). CVE-2017-3738 as aports'
    main/openssl/APKBUILD lists it (commit 0c38f9258c5846ebac187b83e2388c6a0f5109a1): fixed in
    1.0.2n-r0, listed again at 1.0.2o-r0. CVE-2099-0003 is listed at the fix of two release
    lines, as openssl's history holds 1.1.1 and 3.0 fixes."""
    listings = [
        ("CVE-2017-3738", "1.0.2n-r0"),
        ("CVE-2017-3738", "1.0.2o-r0"),
        ("CVE-2099-0003", "1.1.1o-r0"),
        ("CVE-2099-0003", "3.0.3-r0"),
    ]
    if path == "secdb":
        secfixes: dict[str, list[str]] = {}
        for cve, fixed in listings:
            secfixes.setdefault(fixed, []).append(cve)
        pkg = {"pkg": {"name": "openssl", "secfixes": secfixes}}
        return [{"distroversion": "v3.7", "reponame": "main", "packages": [pkg]}]
    if path == "parts":
        return [
            [
                {
                    "pkg_name": "openssl",
                    "ecosystem": "Alpine:v3.7",
                    "purl": "pkg:apk/alpine/openssl?arch=source",
                    "fixed_version": {
                        "AffectedCommits": None,
                        "AffectedVersions": [{"Introduced": "", "Fixed": f, "LastAffected": ""}],
                    },
                }
                for c, f in listings
                if c == cve
            ]
            for cve in ("CVE-2017-3738", "CVE-2099-0003")
        ]

    def ranges(cve: str) -> list[dict]:
        return [
            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": f}]}
            for c, f in listings
            if c == cve
        ]

    package = {"ecosystem": "Alpine:v3.7", "name": "openssl"}
    return [
        {
            "id": f"ALPINE-{cve}",
            "modified": "2025-01-01T00:00:00Z",
            "affected": (
                [{"package": package, "ranges": [r]} for r in ranges(cve)]
                if path == "osv"
                else [{"package": package, "ranges": ranges(cve)}]  # "osv-ranges"
            ),
        }
        for cve in ("CVE-2017-3738", "CVE-2099-0003")
    ]


@pytest.mark.parametrize("path", ["secdb", "parts", "osv", "osv-ranges"])
def test_an_alpine_id_listed_under_two_fixes_reads_alike_on_every_path(
    sqlite_store: Store, tmp_path: Path, path: str
) -> None:
    """A later listing in the fix's release line is the same fix listed again (1.0.2n-r0 is not
    affected; osv.dev's entries read one by one said it was); a listing in a later line is that
    line's fix (3.0.2-r0 is affected; the secdb import kept only 1.1.1o-r0 and missed it)."""
    names = {
        "secdb": "main.json",
        "parts": "{}.alpine.json",
        "osv": "{}.json",
        "osv-ranges": "{}.json",
    }
    for doc, cve in zip(_listed_twice(path), ("CVE-2017-3738", "CVE-2099-0003"), strict=False):
        (tmp_path / names[path].format(cve)).write_text(json.dumps(doc))
    import_sources(sqlite_store, [str(tmp_path)])
    versions = (
        "1.0.2m-r0",
        "1.0.2n-r0",
        "1.0.2o-r0",
        "1.1.1n-r0",
        "1.1.1t-r0",
        "3.0.2-r0",
        "3.0.3-r0",
    )
    inv = Inventory(
        source="alpine",
        distro=Distro(id="alpine", version_id="3.7.3"),
        packages=tuple(
            Package(type="apk", name="openssl", version=v, source_name="openssl") for v in versions
        ),
    )
    got = {
        (f.details.installed_version, f.id.removeprefix("ALPINE-"), f.details.fixed_version)
        for f in match(inv, sqlite_store)
    }
    assert got == {
        ("1.0.2m-r0", "CVE-2017-3738", "1.0.2n-r0"),
        ("1.0.2m-r0", "CVE-2099-0003", "1.1.1o-r0"),
        ("1.0.2n-r0", "CVE-2099-0003", "1.1.1o-r0"),
        ("1.0.2o-r0", "CVE-2099-0003", "1.1.1o-r0"),
        ("1.1.1n-r0", "CVE-2099-0003", "1.1.1o-r0"),
        ("3.0.2-r0", "CVE-2099-0003", "3.0.3-r0"),
    }


@pytest.mark.parametrize("path", ["osv", "parts"])
def test_an_osv_dev_alpine_range_with_its_introduced_above_its_fix_reads_as_the_secdb_fix(
    sqlite_store: Store, tmp_path: Path, path: str
) -> None:
    """osv.dev's ALPINE-CVE-2018-18311 (google/osv.dev#5634) says ``introduced 5.28.0, fixed
    5.26.3-r0`` on every Alpine branch: NVD's upstream start joined with secdb's fix. Read as
    written it reported every perl from 5.28.0 on (the v3.24 branch ships 5.42.2-r0) and no perl
    below the fix; secdb lists the fix at 5.26.3-r0."""
    record = {
        "id": "ALPINE-CVE-2018-18311",
        "modified": "2026-07-13T00:00:00Z",
        "upstream": ["CVE-2018-18311"],
        "affected": [
            {
                "package": {"ecosystem": "Alpine:v3.24", "name": "perl"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "5.28.0"}, {"fixed": "5.26.3-r0"}],
                    }
                ],
            }
        ],
    }
    parts = [
        {
            "pkg_name": "perl",
            "ecosystem": "Alpine:v3.24",
            "fixed_version": {
                "AffectedVersions": [
                    {"Introduced": "5.28.0", "Fixed": "5.26.3-r0", "LastAffected": ""}
                ]
            },
        }
    ]
    if path == "osv":
        (tmp_path / "ALPINE-CVE-2018-18311.json").write_text(json.dumps(record))
    else:
        (tmp_path / "CVE-2018-18311.alpine.json").write_text(json.dumps(parts))
    import_sources(sqlite_store, [str(tmp_path)])
    inv = Inventory(
        source="alpine",
        distro=Distro(id="alpine", version_id="3.24.0"),
        packages=tuple(
            Package(type="apk", name="perl", version=v, source_name="perl")
            for v in ("5.26.2-r1", "5.28.0-r0", "5.42.2-r0")
        ),
    )
    got = {(f.details.installed_version, f.details.fixed_version) for f in match(inv, sqlite_store)}
    assert got == {("5.26.2-r1", "5.26.3-r0")}


def test_ubuntu_fips_builds_fixes_do_not_reach_stock_packages(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Canonical's OSV records list a release's FIPS builds under their own ecosystem
    (Ubuntu:Pro:FIPS-updates:22.04:LTS) with their own versions; read as the release, a FIPS
    fix (3.0.5-...+Fips) reported a stock openssl at its stock fix as affected. They are kept
    as ubuntu-fips:22.04, which only FIPS builds are matched against. The stock entry
    is CVE-2024-0727's for jammy (canonical/ubuntu-security-notices, osv/cve/2024, commit
    f7269e52117ed7b1e1bee9d2eccd4ec8c7e022a8); the FIPS entry is in the shape of the others."""

    def entry(ecosystem: str, fixed: str) -> dict:
        return {
            "package": {"ecosystem": ecosystem, "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            "ecosystem_specific": {"ubuntu_priority": "low"},
        }

    record = {
        "schema_version": "1.6.3",
        "id": "CVE-2024-0727",
        "modified": "2024-08-23T16:30:37Z",
        "affected": [
            entry("Ubuntu:22.04:LTS", "3.0.2-0ubuntu1.14"),
            entry("Ubuntu:Pro:FIPS-updates:22.04:LTS", "3.0.5-0ubuntu0.1+Fips2.1"),
        ],
    }
    (tmp_path / "CVE-2024-0727.json").write_text(json.dumps(record))
    (batch,) = import_sources(sqlite_store, [str(tmp_path)])
    assert batch.problems == []
    inv = Inventory(
        source="ubuntu",
        distro=Distro(id="ubuntu", version_id="22.04"),
        packages=tuple(
            Package(type="deb", name="openssl", version=v, source_name="openssl")
            for v in ("3.0.2-0ubuntu1.13", "3.0.2-0ubuntu1.14")
        ),
    )
    got = {(f.details.installed_version, f.details.fixed_version) for f in match(inv, sqlite_store)}
    assert got == {("3.0.2-0ubuntu1.13", "3.0.2-0ubuntu1.14")}


def test_distribution_findings_without_a_score_take_the_nvd_records(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Alpine's secdb has no CVSS and Debian's tracker often no urgency: their findings were
    "unknown" (a CI gate at high never failed on them). An NVD record of the CVE (real: NVD API
    2.0, CVE-2022-1576) gives its score, and its rating where the distribution has none; a
    distribution's own rating stays."""
    secdb = {
        "distroversion": "v3.19",
        "reponame": "community",
        "packages": [{"pkg": {"name": "wordpress", "secfixes": {"6.0.1-r0": ["CVE-2022-1576"]}}}],
    }
    tracker = {
        "wordpress": {
            "CVE-2022-1576": {
                "releases": {
                    "bookworm": {"status": "open", "urgency": "low"},
                    "bullseye": {"status": "open", "urgency": "not yet assigned"},
                }
            }
        }
    }
    (tmp_path / "main.json").write_text(json.dumps(secdb))
    (tmp_path / "tracker.json").write_text(json.dumps(tracker))
    nvd = Path(__file__).parent / "data" / "advisories" / "nvd" / "single-entry.json"
    import_sources(sqlite_store, [str(tmp_path / "main.json"), str(tmp_path / "tracker.json")])

    def scan(distro: Distro, ptype: str) -> set[tuple[str, Severity, float | None]]:
        inv = Inventory(
            source="x",
            distro=distro,
            packages=(
                Package(type=ptype, name="wordpress", version="6.0-r0", source_name="wordpress"),
            ),
        )
        return {(f.id, f.severity, f.details.cvss_score) for f in match(inv, sqlite_store)}

    alpine, bookworm, bullseye = (
        Distro(id="alpine", version_id="3.19.1"),
        Distro(id="debian", version_id="12"),
        Distro(id="debian", version_id="11"),
    )
    assert scan(alpine, "apk") == {("CVE-2022-1576", Severity.UNKNOWN, None)}
    import_sources(sqlite_store, [str(nvd)])
    assert scan(alpine, "apk") == {("CVE-2022-1576", Severity.MEDIUM, 6.5)}
    assert scan(bookworm, "deb") == {("CVE-2022-1576", Severity.LOW, 6.5)}  # Debian's urgency
    assert scan(bullseye, "deb") == {("CVE-2022-1576", Severity.MEDIUM, 6.5)}


def test_nuget_crates_packagist_records_meet_their_catalogers_packages(sqlite_store: Store) -> None:
    """Real GitHub Advisory Database records of the NuGet, crates.io and Packagist ecosystems are
    imported and matched against packages as the new catalogers report them (type, name, purl),
    versions compared by each ecosystem's own scheme."""
    import_sources(sqlite_store, [str(ECOSYSTEM_DATA / "osv")])
    inv = Inventory(
        source="dir:/app",
        packages=(
            Package(type="dotnet", name="Newtonsoft.Json", version="12.0.3"),
            Package(type="dotnet", name="Newtonsoft.Json", version="13.0.1"),
            Package(type="dotnet", name="newtonsoft.json", version="9.0.1-beta1"),
            Package(type="rust-crate", name="time", version="0.1.43"),
            Package(type="rust-crate", name="time", version="0.2.22"),
            Package(type="rust-crate", name="time", version="0.2.23"),
            Package(type="rust-crate", name="time", version="0.3.44"),
            Package(type="php-composer", name="guzzlehttp/guzzle", version="6.5.5"),
            Package(type="php-composer", name="guzzlehttp/guzzle", version="7.4.2"),
            Package(type="php-composer", name="guzzlehttp/guzzle", version="v7.4.3"),
            Package(type="php-composer", name="guzzlehttp/guzzle", version="7.0.0-beta1"),
        ),
    )
    report = Matcher(sqlite_store).run(inv)
    got = {
        (f.details.package, f.details.installed_version, f.id, f.details.fixed_version)
        for f in report.findings
    }
    assert got == {
        ("Newtonsoft.Json", "12.0.3", "GHSA-5crp-9r3c-p9vr", "13.0.1"),
        ("newtonsoft.json", "9.0.1-beta1", "GHSA-5crp-9r3c-p9vr", "13.0.1"),
        ("time", "0.1.43", "CVE-2020-26235", None),  # 0.1: no fix in the series
        ("time", "0.2.22", "CVE-2020-26235", "0.2.23"),
        ("guzzlehttp/guzzle", "6.5.5", "CVE-2022-29248", "6.5.6"),
        ("guzzlehttp/guzzle", "7.4.2", "CVE-2022-29248", "7.4.3"),
        # not 0.2.23 (fixed), nor 0.3.44: the record's open 0.1 range ends "< 0.2"
        # (database_specific.last_known_affected_version_range); nor guzzle 7.0.0-beta1,
        # which Composer sorts after 6.5.6 and before the second range's 7.0.0
    }
    assert report.checked == len(inv.packages)
    assert report.unchecked == ()


def _ubuntu(release: str, packages: list[tuple[str, str]]) -> Inventory:
    return Inventory(
        source="ubuntu",
        distro=Distro(id="ubuntu", version_id=release),
        packages=tuple(
            Package(type="deb", name=n, version=v, source_name="openssl") for n, v in packages
        ),
    )


def test_ubuntu_fips_builds_are_matched_against_the_fips_streams_only(
    sqlite_store: Store,
) -> None:
    """A FIPS build's revision (1.1.1f-1ubuntu2.fips.7.1) sorts above the stock fix
    (1.1.1f-1ubuntu2.17): matched as the stock release, every FIPS openssl read as fixed. They
    are matched against Canonical's FIPS streams (real record UBUNTU-CVE-2022-4450): the
    certified stream (not fixed there) by the builds it lists, FIPS-updates by its range; a
    FIPS-updates build with the fix is not reached by the certified stream's open range."""
    record = DATA / "ubuntu-fips" / "UBUNTU-CVE-2022-4450.json"
    (batch,) = import_sources(sqlite_store, [str(record)])
    assert batch.problems == []
    focal = _ubuntu(
        "20.04",
        [
            ("libssl1.1", "1.1.1f-1ubuntu2.16"),  # stock
            ("openssl", "1.1.1f-1ubuntu2.fips.7.1"),  # certified FIPS
            ("libssl1.1-hmac", "1.1.1f-1ubuntu2.fips.16"),  # FIPS-updates
            ("libssl1.1-dev", "1.1.1f-1ubuntu2.fips.17"),  # FIPS-updates, fixed
            ("libssl-doc", "1.1.1f-1ubuntu2.17"),  # stock, fixed
        ],
    )
    report = Matcher(sqlite_store).run(focal)
    got = {
        (f.details.package, f.details.installed_version, f.details.fixed_version)
        for f in report.findings
    }
    assert got == {
        ("libssl1.1", "1.1.1f-1ubuntu2.16", "1.1.1f-1ubuntu2.17"),
        ("openssl", "1.1.1f-1ubuntu2.fips.7.1", "1.1.1f-1ubuntu2.fips.17"),
        ("libssl1.1-hmac", "1.1.1f-1ubuntu2.fips.16", "1.1.1f-1ubuntu2.fips.17"),
    }
    assert report.unchecked == ()
    bionic = _ubuntu("18.04", [("libssl1.1", "1.1.1-1ubuntu2.fips.2.1~18.04.15.2")])
    (f,) = Matcher(sqlite_store).run(bionic).findings
    assert f.details.fixed_version == "1.1.1-1ubuntu2.fips.2.1~18.04.21"


def test_ubuntu_fips_builds_without_fips_data_are_unchecked(sqlite_store: Store) -> None:
    """With only stock records in the store a FIPS build is reported unchecked, not clean."""
    import_sources(sqlite_store, [str(DATA / "ubuntu-osv" / "CVE-2024-22365.json")])
    inv = _ubuntu("18.04", [("libssl1.1", "1.1.1-1ubuntu2.fips.2.1~18.04.15.2")])
    kernel = Package(
        type="deb",
        name="linux-image-4.15.0-2000-fips",
        version="4.15.0-2000.4",
        source_name="linux-fips",
    )
    inv = dataclasses.replace(inv, packages=(*inv.packages, kernel))
    report = Matcher(sqlite_store).run(inv)
    assert report.findings == ()
    assert [(u.ecosystem, u.packages) for u in report.unchecked] == [("ubuntu-fips:18.04", 2)]


def test_ubuntu_realtime_kernels_are_matched_against_their_own_stream(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Canonical files the Realtime kernels under their own ecosystem
    (Ubuntu:Pro:22.04:LTS:Realtime:Kernel); the importer skipped it and the stock release's
    data never names linux-realtime, so a Realtime kernel counted as checked and clean."""

    def entry(ecosystem: str, name: str, fixed: str) -> dict:
        return {
            "package": {"ecosystem": ecosystem, "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        }

    record = {
        "id": "CVE-2099-0101",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            entry("Ubuntu:22.04:LTS", "linux", "5.15.0-200.210"),
            entry("Ubuntu:Pro:22.04:LTS:Realtime:Kernel", "linux-realtime", "5.15.0-1060.68"),
        ],
    }
    (tmp_path / "CVE-2099-0101.json").write_text(json.dumps(record))
    (batch,) = import_sources(sqlite_store, [str(tmp_path)])
    assert batch.problems == []
    kernel = Package(
        type="deb",
        name="linux-image-5.15.0-1059-realtime",
        version="5.15.0-1059.67",
        source_name="linux-realtime",
    )
    inv = Inventory(source="u", distro=Distro(id="ubuntu", version_id="22.04"), packages=(kernel,))
    (f,) = Matcher(sqlite_store).run(inv).findings
    assert f.details.fixed_version == "5.15.0-1060.68"


def test_go_entries_of_systems_without_elf_binaries_do_not_reach_binaries_read_from_images(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """GO-2023-1568 (real Go vulndb record): path/filepath on Windows only
    (``imports[].goos: [windows]``). Stockade reads Go modules from ELF binaries, which no
    Windows build is: matched as ``go``, every Linux binary built with Go before 1.19.6 was
    reported vulnerable. The entry is kept apart as ``go:windows``; an entry for Linux too
    still matches."""
    record = DATA / "go-vulndb" / "GO-2023-1568.json"
    (batch,) = import_sources(sqlite_store, [str(record)])
    assert batch.problems == []
    (adv,) = batch.advisories
    assert [a.ecosystem for a in adv.affected] == ["go:windows"]
    binary = Inventory(
        source="go",
        packages=(_pkg("go-module", "stdlib", "go1.19.5", purl="pkg:golang/stdlib@1.19.5"),),
    )
    assert Matcher(sqlite_store).run(binary).findings == ()
    doc = json.loads(record.read_text())
    doc["affected"][0]["ecosystem_specific"]["imports"][0]["goos"] = ["windows", "linux"]
    copy = tmp_path / "GO-2023-1568.json"
    copy.write_text(json.dumps(doc))
    import_sources(sqlite_store, [str(copy)])
    (f,) = Matcher(sqlite_store).run(binary).findings
    assert (f.id, f.details.fixed_version) == ("CVE-2022-41722", "1.19.6")
