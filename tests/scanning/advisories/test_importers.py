"""Every importer on real records (shared/data/advisories and Debian's Go vulndb test data)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from stockade.model.errors import AdvisoryError
from stockade.scanning.advisories.model import EventKind, FixState
from stockade.scanning.advisories.reader import read_source
from stockade.store import Store


def _by_id(batch):
    return {a.id: a for a in batch.advisories}


def test_osv_samples(advisories_dir: Path) -> None:
    batch = read_source(str(advisories_dir / "osv-samples"))
    assert batch.kind == "osv"
    advs = _by_id(batch)
    problems = [str(p) for p in batch.problems]
    # PYSEC-2023-74 (requests): the GIT range is skipped with a reason, the ECOSYSTEM range kept.
    req = advs["PYSEC-2023-74"]
    (aff,) = req.affected
    assert (aff.ecosystem, aff.package, aff.fix_state, aff.fixed_version) == (
        "pypi", "requests", FixState.FIXED, "2.31.0"
    )  # fmt: skip
    assert aff.ranges[0].events == ((EventKind.INTRODUCED, "2.3.0"), (EventKind.FIXED, "2.31.0"))
    assert len(aff.versions) == 66 and "2.30.0" in aff.versions
    assert set(req.aliases) == {"CVE-2023-32681", "GHSA-j8r2-6x86-q33q"}
    assert any("PYSEC-2023-74" in p and "GIT range skipped" in p for p in problems)
    # Withdrawn records are skipped and said so.
    assert "GHSA-35c4-f3rq-f9g3" not in advs
    assert any("GHSA-35c4-f3rq-f9g3" in p and "withdrawn" in p for p in problems)
    # RubyGems has a version scheme: its record is imported, ranges checked against it.
    assert not any("RubyGems" in p for p in problems)
    assert advs["GHSA-9qj7-jvg4-qr2x"].affected[0].ecosystem == "rubygems"
    assert advs["GHSA-9qj7-jvg4-qr2x"].affected[0].package == "passenger"
    # PEP 503 names, Maven group:artifact, npm, Go module paths and stdlib.
    assert advs["GHSA-p44j-xrqg-4xrr"].affected[0].package == "products-pluggableauthservice"
    assert advs["GHSA-76mp-659p-rw65"].affected[0].package == "org.xwiki.commons:xwiki-commons-core"
    assert advs["GHSA-mhpp-875w-9cpv"].affected[0].ecosystem == "npm"
    assert advs["GO-2020-0001"].affected[0].package == "github.com/gin-gonic/gin"
    assert advs["GO-2024-2963"].affected[0].package == "stdlib"
    # Alpine OSV: ecosystem Alpine:v3.3 becomes alpine:3.3; CVSS computed from the vector.
    ossl = advs["CVE-2018-5407"]
    assert "alpine:3.3" in {a.ecosystem for a in ossl.affected}
    assert ossl.cvss[0].score == 4.7
    # GHSA text severity and CVSS both kept.
    gradio = advs["GHSA-9v2f-6vcg-3hgv"]
    assert gradio.cvss[0].score == 9.8 and gradio.severity == "critical"
    assert gradio.affected[0].versions and not gradio.affected[0].ranges


def test_debian_tracker_excerpt(advisories_dir: Path) -> None:
    src = advisories_dir / "debian-tracker" / "debian_security_tracker_excerpt.json"
    batch = read_source(str(src))
    assert batch.kind == "debian-tracker" and not batch.problems
    advs = _by_id(batch)
    assert "CVE-2014-1424" not in advs  # fixed_version "0" everywhere: never affected
    open_ = {a.ecosystem: a for a in advs["CVE-2016-1585"].affected}
    assert open_["debian:12"].fix_state == FixState.NOT_FIXED
    assert open_["debian:12"].severity == "unimportant" and open_["debian:12"].package == "apparmor"
    fixed = {a.ecosystem: a for a in advs["CVE-2017-6507"].affected}
    assert (
        fixed["debian:12"].fix_state == FixState.FIXED
        and fixed["debian:12"].fixed_version == "2.11.0-3"
    )


def test_debian_tracker_statuses(advisories_dir: Path, tmp_path: Path) -> None:
    """The real record, edited into each status the tracker uses."""
    src = advisories_dir / "debian-tracker" / "debian_security_tracker_excerpt.json"
    doc = json.loads(src.read_text())
    rec = doc["apparmor"]["CVE-2016-1585"]
    rec["releases"]["bookworm"].update(nodsa="Minor issue", nodsa_reason="postponed")
    rec["releases"]["bullseye"].update(nodsa="Minor issue", nodsa_reason="ignored")
    rec["releases"]["buster"]["status"] = "undetermined"
    rec["releases"]["trixie"]["urgency"] = "medium**"
    rec["releases"]["experimental"] = {"status": "open"}
    doc["apparmor"]["CVE-2099-0001"] = {
        "releases": {"bookworm": {"status": "resolved", "fixed_version": "1:bad version"}}
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    batch = read_source(str(tmp_path / "t.json"))
    aff = {a.ecosystem: a for a in _by_id(batch)["CVE-2016-1585"].affected}
    assert aff["debian:12"].fix_state == FixState.WONT_FIX
    assert aff["debian:11"].fix_state == FixState.WONT_FIX
    assert aff["debian:10"].fix_state == FixState.UNKNOWN
    assert aff["debian:13"].severity == "medium"
    problems = [str(p) for p in batch.problems]
    assert any("experimental" in p for p in problems)
    assert any("CVE-2099-0001" in p and "invalid dpkg version" in p for p in problems)


def test_alpine_parts(advisories_dir: Path) -> None:
    batch = read_source(str(advisories_dir / "alpine-secfixes"))
    assert batch.kind == "alpine-secdb"
    advs = _by_id(batch)
    aff = {a.ecosystem: a for a in advs["CVE-2016-2176"].affected}
    assert aff["alpine:3.4"].package == "openssl" and aff["alpine:3.4"].fixed_version == "1.0.2h-r0"


def test_alpine_parts_with_a_bad_version(advisories_dir: Path, tmp_path: Path) -> None:
    parts = json.loads(
        (advisories_dir / "alpine-secfixes" / "CVE-2016-2176.alpine.json").read_text()
    )
    parts[0]["fixed_version"]["AffectedVersions"][0]["Introduced"] = "1.0 beta"
    (tmp_path / "CVE-2016-2176.alpine.json").write_text(json.dumps(parts))
    batch = read_source(str(tmp_path))
    (adv,) = batch.advisories
    assert len(adv.affected) == len(parts) - 1
    assert "invalid apk version '1.0 beta'" in str(batch.problems[0])


def test_alpine_secdb_format(tmp_path: Path) -> None:
    """The published secdb shape (values as in secdb v3.4 main for openssl)."""
    doc = {
        "apkurl": "{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}.apk",
        "archs": ["x86_64"],
        "reponame": "main",
        "urlprefix": "https://dl-cdn.alpinelinux.org/alpine",
        "distroversion": "v3.4",
        "packages": [
            {"pkg": {"name": "openssl", "secfixes": {
                "1.0.2h-r0": ["CVE-2016-2105", "CVE-2016-2106", "CVE-2016-2176"],
                "1.0.2q-r0": ["CVE-2018-5407"],
                "0": ["CVE-2000-0001"],
                "1.0.2 broken": ["CVE-2016-9999"],
            }}},
            {"nopkg": True},
        ],
    }  # fmt: skip
    (tmp_path / "main.json").write_text(json.dumps(doc))
    batch = read_source(str(tmp_path / "main.json"))
    advs = _by_id(batch)
    assert set(advs) == {"CVE-2016-2105", "CVE-2016-2106", "CVE-2016-2176", "CVE-2018-5407"}
    a = advs["CVE-2018-5407"].affected[0]
    assert (a.ecosystem, a.package, a.fixed_version) == ("alpine:3.4", "openssl", "1.0.2q-r0")
    assert len(batch.problems) == 2  # the bad version and the entry without pkg


def test_go_vulndb_from_debian(go_vulndb: list[Path]) -> None:
    batch = read_source(str(go_vulndb[0]))
    ids = {a.id for a in batch.advisories}
    assert {"GO-2021-0054", "GO-2021-0059", "GO-2021-0265", "GO-2022-0592", "GO-2022-0463"} <= ids
    assert {a.id for a in read_source(str(go_vulndb[1])).advisories} >= {
        "GO-2020-0015",
        "GO-2021-0113",
    }
    beego = next(a for a in batch.advisories if a.id == "GO-2022-0569")
    v2 = next(x for x in beego.affected if x.package == "github.com/beego/beego/v2")
    assert v2.ranges[0].events == ((EventKind.INTRODUCED, "2.0.0"), (EventKind.FIXED, "2.0.4"))


def test_bad_records_are_reported_and_skipped(advisories_dir: Path, tmp_path: Path) -> None:
    good = json.loads((advisories_dir / "osv-samples" / "GO-2020-0001.json").read_text())
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "truncated.json").write_text(json.dumps(good)[:200])
    bad_eco = dict(
        good,
        id="X-1",
        affected=[dict(good["affected"][0], package={"ecosystem": "Nope", "name": "x"})],
    )
    (tmp_path / "eco.json").write_text(json.dumps(bad_eco))
    bad_ver = json.loads(json.dumps(good))
    bad_ver["id"] = "X-2"
    bad_ver["affected"][0]["ranges"][0]["events"] = [
        {"introduced": "0"},
        {"fixed": "not.a.version!"},
    ]
    (tmp_path / "ver.json").write_text(json.dumps(bad_ver))
    (tmp_path / "other.json").write_text('{"hello": "world"}')
    batch = read_source(str(tmp_path))
    assert [a.id for a in batch.advisories] == ["GO-2020-0001"]
    text = "\n".join(str(p) for p in batch.problems)
    assert "truncated.json: malformed JSON" in text
    assert "eco.json#X-1" in text and "unknown or unsupported ecosystem 'Nope'" in text
    assert "ver.json#X-2" in text and "invalid go version 'not.a.version!'" in text
    assert "other.json: not a recognised advisory format" in text


def test_osv_all_zip(advisories_dir: Path, tmp_path: Path) -> None:
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted((advisories_dir / "osv-samples").glob("*.json")):
            zf.write(f, f.name)
        zf.writestr("broken.json", "{")
    batch = read_source(str(z))
    direct = read_source(str(advisories_dir / "osv-samples"))
    assert sorted(a.id for a in batch.advisories) == sorted(a.id for a in direct.advisories)
    assert any(str(p).startswith("all.zip:broken.json") for p in batch.problems)


def test_unreadable_sources_raise(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryError, match="no such file"):
        read_source(str(tmp_path / "missing.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdvisoryError, match=r"no \.json or \.zip"):
        read_source(str(tmp_path / "empty"))
    with pytest.raises(AdvisoryError, match="unsupported URL scheme"):
        read_source("ftp://example.invalid/x.json")


def test_nvd_records_bring_their_scores_without_packages(tmp_path: Path) -> None:
    """NVD API 2.0 records (the real CVE-2022-1576 page, see the data README): stored for their
    CVSS (NVD's Primary metric of each version, the newest as headline), without affected
    packages; a Rejected record is skipped."""
    data = Path(__file__).parents[1] / "data" / "advisories" / "nvd" / "single-entry.json"
    doc = json.loads(data.read_text())
    rejected = json.loads(json.dumps(doc["vulnerabilities"][0]))
    rejected["cve"].update(id="CVE-2099-0001", vulnStatus="Rejected")
    doc["vulnerabilities"].append(rejected)
    (tmp_path / "nvd.json").write_text(json.dumps(doc))
    batch = read_source(str(tmp_path / "nvd.json"))
    assert batch.kind == "nvd" and not batch.problems
    (adv,) = batch.advisories
    assert (adv.id, adv.source, adv.affected) == ("CVE-2022-1576", "nvd", ())
    assert [(c.version, c.score) for c in adv.cvss] == [("3.1", 6.5), ("2.0", 4.3)]
    assert adv.summary.startswith("The WP Maintenance Mode & Coming Soon WordPress plugin")


def test_rustsec_notices_are_not_vulnerabilities() -> None:
    """RustSec's OSV export holds notices beside vulnerabilities: ``ansi_term is Unmaintained``
    (``informational: unmaintained``, every version, no fix) was a vulnerability of every
    ansi_term for ever (cargo-audit reports it as a warning). It is skipped with its reason; a
    soundness bug (``unsound``) is a flaw and is kept."""
    rustsec = Path(__file__).parents[1] / "data" / "advisories" / "rustsec"
    batch = read_source(str(rustsec))
    assert [a.id for a in batch.advisories] == ["RUSTSEC-2021-0145"]
    assert any(
        "RUSTSEC-2021-0139" in p.where and "informational advisory (unmaintained)" in p.message
        for p in batch.problems
    ), batch.problems


def test_rustsec_entries_for_systems_without_elf_binaries_are_kept_apart(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """RUSTSEC-2021-0145 (real record): atty's unaligned read applies on Windows only
    (``affects.os: [windows]``); the crates of a Linux image are not Windows builds. Kept as
    ``crates.io:windows``, it no longer reaches atty in a Linux image; for Linux too, it does."""
    from stockade.scanning.advisories.update import import_sources
    from stockade.scanning.interface import Inventory, Package
    from stockade.scanning.matcher import Matcher

    record = (
        Path(__file__).parents[1] / "data" / "advisories" / "rustsec" / "RUSTSEC-2021-0145.json"
    )
    (batch,) = import_sources(sqlite_store, [str(record)])
    (adv,) = batch.advisories
    assert [a.ecosystem for a in adv.affected] == ["crates.io:windows"]
    inv = Inventory(
        source="x", packages=(Package(type="rust-crate", name="atty", version="0.2.14"),)
    )
    assert Matcher(sqlite_store).run(inv).findings == ()
    doc = json.loads(record.read_text())
    doc["affected"][0]["ecosystem_specific"]["affects"]["os"] = ["windows", "linux"]
    copy = tmp_path / "RUSTSEC-2021-0145.json"
    copy.write_text(json.dumps(doc))
    import_sources(sqlite_store, [str(copy)])
    (f,) = Matcher(sqlite_store).run(inv).findings
    assert (f.id, f.details.aliases) == ("GHSA-g98v-hv3f-hcfr", ("RUSTSEC-2021-0145",))
