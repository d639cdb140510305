"""Red Hat CSAF VEX, Amazon Linux updateinfo and Ubuntu OSV on real documents (provenance in
tests/scanning/data/README.md): import, then match constructed installed package sets."""

from __future__ import annotations

import copy
import io
import json
import tarfile
from pathlib import Path

import pytest

from stockade.model import Severity
from stockade.scanning.advisories.model import FixState
from stockade.scanning.advisories.reader import read_source
from stockade.scanning.advisories.update import import_sources
from stockade.scanning.interface import Distro, Inventory, Package, VulnerabilityDetails
from stockade.scanning.matcher import Matcher
from stockade.store import Store

DATA = Path(__file__).resolve().parents[1] / "data" / "advisories"
VEX = DATA / "redhat-vex"


def _rpm(name: str, version: str, source: str | None = None, **meta: str) -> Package:
    """An installed RPM as the rpm cataloger reads it (``[epoch:]version-release``)."""
    src_name, _, src_version = (source or "").rpartition("@")
    return Package(
        type="rpm",
        name=name,
        version=version,
        source_name=src_name or None,
        source_version=src_version or None,
        metadata=tuple(meta.items()),
    )


def _findings(store: Store, distro: Distro, *packages: Package) -> dict[tuple[str, str], object]:
    report = Matcher(store).run(Inventory(source="test", distro=distro, packages=packages))
    out = {}
    for f in report.findings:
        assert isinstance(f.details, VulnerabilityDetails)
        out[(f.details.package + "@" + f.details.installed_version, f.id)] = f
    return out


# --- Red Hat CSAF VEX -----------------------------------------------------------------------


def test_redhat_vex_import() -> None:
    batch = read_source(str(VEX))
    assert batch.kind == "redhat-vex", batch.problems
    advs = {a.id: a for a in batch.advisories}
    curl = {(a.ecosystem, a.package): a for a in advs["CVE-2023-38545"].affected}
    # The 9.0 EUS stream (cpe rhel_eus) is not read; of the main-stream fixes (9.2 z-stream,
    # 9.3) the newest minor release's wins.
    fix = curl[("redhat:9", "curl")]
    assert (fix.fix_state, fix.fixed_version, fix.severity) == (
        FixState.FIXED, "7.76.1-26.el9_3.2", "important"
    )  # fmt: skip
    assert set(curl) == {("redhat:9", "curl")}  # RHEL 8 known_not_affected: no entry
    assert advs["CVE-2023-38545"].cvss[0].score == 8.1
    # known_affected + no_fix_planned ("Out of support scope") -> wont-fix.
    (yaml,) = advs["CVE-2022-38752"].affected
    assert (yaml.ecosystem, yaml.package, yaml.fix_state) == (
        "redhat:7", "snakeyaml", FixState.WONT_FIX
    )  # fmt: skip
    # A module component: keyed by module:stream/package.
    (gt,) = advs["CVE-2024-24786"].affected
    assert (gt.ecosystem, gt.package, gt.fix_state) == (
        "redhat:8", "go-toolset:rhel8/go-toolset", FixState.NOT_FIXED
    )  # fmt: skip


def _module_fix(tmp_path: Path) -> Path:
    """The real go-toolset document, edited so that RHEL 8's go-toolset:rhel8 stream has a fix
    with an epoch (the shape Red Hat uses for modular RPMs: rpmmod and epoch purl qualifiers)."""
    doc = json.loads((VEX / "cve-2024-24786.json").read_text())
    nevra = "go-toolset-1:1.20.10-1.module+el8.9.0+20382+04f7fe80.src"
    purl = (
        "pkg:rpm/redhat/go-toolset@1.20.10-1.module%2Bel8.9.0%2B20382%2B04f7fe80"
        "?arch=src&epoch=1&rpmmod=go-toolset:rhel8:8090020231030151315:a75119d5"
    )
    doc["product_tree"]["branches"].append(
        {
            "category": "product_version",
            "name": nevra,
            "product": {
                "name": nevra,
                "product_id": nevra,
                "product_identification_helper": {"purl": purl},
            },
        }
    )
    full = f"red_hat_enterprise_linux_8:{nevra}"
    doc["product_tree"]["relationships"].append(
        {
            "category": "default_component_of",
            "full_product_name": {"name": nevra, "product_id": full},
            "product_reference": nevra,
            "relates_to_product_reference": "red_hat_enterprise_linux_8",
        }
    )
    status = doc["vulnerabilities"][0]["product_status"]
    status["fixed"], status["known_affected"] = [full], []
    out = tmp_path / "module-fix"
    out.mkdir()
    (out / "cve-2024-24786.json").write_text(json.dumps(doc))
    return out


def test_redhat_vex_matching(sqlite_store: Store, tmp_path: Path) -> None:
    import_sources(
        sqlite_store, [str(VEX / "cve-2023-38545.json"), str(VEX / "cve-2022-38752.json")]
    )
    import_sources(sqlite_store, [str(_module_fix(tmp_path))])
    rhel9 = Distro(id="rhel", version_id="9.3")
    found = _findings(
        sqlite_store,
        rhel9,
        _rpm("curl", "7.76.1-26.el9_3", "curl@7.76.1-26.el9_3"),  # 9.3 GA: before the fix
        _rpm("libcurl", "7.76.1-26.el9_3.2", "curl@7.76.1-26.el9_3.2"),  # fixed
    )
    f = found[("curl@7.76.1-26.el9_3", "CVE-2023-38545")]
    assert (f.details.fix_state, f.details.fixed_version, f.severity) == (
        "fixed", "7.76.1-26.el9_3.2", Severity.HIGH
    )  # fmt: skip
    assert f.details.data_source == "redhat-vex"
    assert len(found) == 1
    # Will not fix, RHEL 7.
    found = _findings(
        sqlite_store,
        Distro(id="rhel", version_id="7.9"),
        _rpm("snakeyaml", "1.11-1.el7", "snakeyaml@1.11-1.el7"),
    )
    f = found[("snakeyaml@1.11-1.el7", "CVE-2022-38752")]
    assert (f.details.fix_state, f.details.fixed_version) == ("wont-fix", None)
    # Modules and epochs: only an RPM of the same module stream matches, and the epoch counts.
    rhel8 = Distro(id="rhel", version_id="8.9")
    label = "go-toolset:rhel8:8080020230419142419:b754926a"
    found = _findings(
        sqlite_store,
        rhel8,
        _rpm(
            "go-toolset",
            "1.19.6-1.module+el8.8.0+18400+c2f6a4ca",
            "go-toolset@1.19.6-1.module+el8.8.0+18400+c2f6a4ca",
            epoch="1",
            **{"modularity-label": label},
        ),
        # Epoch 0 of a higher version is still below 1:1.20.10.
        _rpm(
            "go-toolset",
            "1.21.0-1.module+el8",
            "go-toolset@1.21.0-1.module+el8",
            **{"modularity-label": label},
        ),
        # Fixed (same epoch, same version).
        _rpm(
            "go-toolset",
            "1:1.20.10-1.module+el8.9.0+20382+04f7fe80",
            "go-toolset@1.20.10-1.module+el8.9.0+20382+04f7fe80",
            epoch="1",
            **{"modularity-label": label},
        ),
        # Not modular, or another stream: the module's advisory does not apply.
        _rpm("go-toolset", "1.19.6-1.el8", "go-toolset@1.19.6-1.el8", epoch="1"),
        _rpm(
            "go-toolset",
            "1.19.6-1.el8",
            "go-toolset@1.19.6-1.el8",
            epoch="1",
            **{"modularity-label": "go-toolset:other:1:2"},
        ),
    )
    assert set(found) == {
        ("go-toolset@1.19.6-1.module+el8.8.0+18400+c2f6a4ca", "CVE-2024-24786"),
        ("go-toolset@1.21.0-1.module+el8", "CVE-2024-24786"),
    }
    f = found[("go-toolset@1.21.0-1.module+el8", "CVE-2024-24786")]
    assert f.details.fixed_version == "1:1.20.10-1.module+el8.9.0+20382+04f7fe80"


@pytest.mark.parametrize("distro_id", ["rocky", "almalinux"])
def test_rhel_rebuilds_match_through_declared_compatibility(
    sqlite_store: Store, distro_id: str
) -> None:
    import_sources(sqlite_store, [str(VEX / "cve-2023-38545.json")])
    report = Matcher(sqlite_store).run(
        Inventory(
            source="test",
            distro=Distro(id=distro_id, version_id="9.2"),
            packages=(
                _rpm("curl", "7.76.1-23.el9", "curl@7.76.1-23.el9"),
                _rpm("unrelated", "1.0-1.el9", "unrelated@1.0-1.el9"),
            ),
        )
    )
    (f,) = report.findings
    assert (f.id, f.details.fixed_version) == ("CVE-2023-38545", "7.76.1-26.el9_3.2")
    assert f.details.data_source == f"redhat-vex ({distro_id}:9 matched as redhat:9)"
    # Red Hat's data covers the rebuild's release: nothing is reported as unchecked.
    assert report.unchecked == () and report.checked == 2
    # Another major release is not covered.
    other = Matcher(sqlite_store).run(
        Inventory(
            source="test",
            distro=Distro(id=distro_id, version_id="8.9"),
            packages=(_rpm("curl", "7.61.1-30.el8", "curl@7.61.1-30.el8"),),
        )
    )
    assert other.findings == () and [u.ecosystem for u in other.unchecked] == [f"{distro_id}:8"]


def test_sle_micro_for_rancher_matches_through_sle_micro(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """SLE Micro for Rancher (os-release ID ``sle-micro-rancher``, the Elemental images) was an
    unknown distribution: its RPMs were not checked at all. It carries SLE Micro's packages, so it
    is looked up in its own release and in SLE Micro's. The real SUSE document, with its SLES 15
    SP5 product's CPE edited to SLE Micro 5.4 (the shape SUSE gives SLE Micro products)."""
    doc = json.loads((DATA / "suse-vex/cve-2023-47627.json").read_text())
    text = json.dumps(doc).replace('"cpe:/o:suse:sles:15:sp5"', '"cpe:/o:suse:sle-micro:5.4"')
    assert text != json.dumps(doc)
    (tmp_path / "cve-2023-47627.json").write_text(text)
    import_sources(sqlite_store, [str(tmp_path / "cve-2023-47627.json")])
    report = Matcher(sqlite_store).run(
        Inventory(
            source="test",
            distro=Distro(id="sle-micro-rancher", version_id="5.4"),
            packages=(
                _rpm("python311-aiohttp", "3.8.5-150400.10.8.1", "python-aiohttp@3.8.5"),
                _rpm("unrelated", "1.0-1.1", "unrelated@1.0-1.1"),
            ),
        )
    )
    (f,) = report.findings
    assert (f.id, f.details.fixed_version) == ("CVE-2023-47627", "3.9.3-150400.10.14.1")
    assert f.details.data_source == "suse-vex (sle-micro-rancher:5.4 matched as sle-micro:5.4)"
    assert report.unchecked == () and report.checked == 2 and report.skipped == ()


def test_redhat_vex_tar_archives(tmp_path: Path) -> None:
    """The published archive is a tar of per-year folders (``csaf_vex_YYYY-MM-DD.tar.zst``)."""
    direct = sorted(a.id for a in read_source(str(VEX)).advisories)
    assert direct == ["CVE-2022-38752", "CVE-2023-38545", "CVE-2024-24786"]
    plain = tmp_path / "csaf_vex_2024-10-01.tar.gz"
    with tarfile.open(plain, "w:gz") as tf:
        for f in sorted(VEX.glob("*.json")):
            tf.add(f, arcname=f"2023/{f.name}")
    assert sorted(a.id for a in read_source(str(plain)).advisories) == direct
    zstandard = pytest.importorskip("zstandard")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for f in sorted(VEX.glob("*.json")):
            tf.add(f, arcname=f"2023/{f.name}")
    zst = tmp_path / "csaf_vex_2024-10-01.tar.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    assert sorted(a.id for a in read_source(str(zst)).advisories) == direct


def test_redhat_vex_bad_versions_are_problems(tmp_path: Path) -> None:
    doc = json.loads((VEX / "cve-2023-38545.json").read_text())
    broken = copy.deepcopy(doc)
    for r in broken["product_tree"]["relationships"]:
        r["product_reference"] = "curl-0:7.76.1.src"  # no release: not a NEVRA
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    batch = read_source(str(tmp_path / "bad.json"))
    assert not batch.advisories
    assert any("cannot read the NEVRA" in str(p) for p in batch.problems)


# --- Amazon Linux ALAS (updateinfo.xml) -----------------------------------------------------


def test_amazon_updateinfo_import_and_match(sqlite_store: Store) -> None:
    batch = read_source(str(DATA / "amazon"))
    assert batch.kind == "amazon-updateinfo" and not batch.problems
    advs = {a.id: a for a in batch.advisories}
    assert set(advs) == {"ALAS2023-2023-001", "ALAS2-2018-942", "ALAS2-2018-949"}
    rsyslog = {a.package: a for a in advs["ALAS2023-2023-001"].affected}
    assert rsyslog["rsyslog"].ecosystem == "amazon:2023"
    assert rsyslog["rsyslog"].fixed_version == "8.2204.0-3.amzn2023.0.2"
    assert advs["ALAS2023-2023-001"].upstream == ("CVE-2014-3634", "CVE-2022-24903")
    qemu = {a.package: a for a in advs["ALAS2-2018-942"].affected}
    assert qemu["qemu-kvm"].fixed_version == "10:1.5.3-141.amzn2.5.3"  # the epoch kept
    import_sources(sqlite_store, [str(DATA / "amazon")])
    found = _findings(
        sqlite_store,
        Distro(id="amzn", version_id="2023"),
        _rpm("rsyslog", "8.2204.0-2.amzn2023", "rsyslog@8.2204.0-2.amzn2023"),
        _rpm("rsyslog-openssl", "8.2204.0-3.amzn2023.0.2", "rsyslog@8.2204.0-3.amzn2023.0.2"),
    )
    # Two CVEs in one ALAS: one finding under the ALAS id, the CVEs as aliases; Amazon's rating.
    f = found[("rsyslog@8.2204.0-2.amzn2023", "ALAS2023-2023-001")]
    assert f.details.aliases == ("CVE-2014-3634", "CVE-2022-24903")
    assert (f.details.fixed_version, f.severity) == ("8.2204.0-3.amzn2023.0.2", Severity.HIGH)
    assert len(found) == 1
    found = _findings(
        sqlite_store,
        Distro(id="amzn", version_id="2"),
        _rpm("qemu-kvm", "2.12.0-1.amzn2", "qemu-kvm@2.12.0-1.amzn2"),  # epoch 0 < 10
        _rpm("qemu-img", "10:1.5.3-141.amzn2.5.3", "qemu-kvm@1.5.3-141.amzn2.5.3", epoch="10"),
    )
    f = found[("qemu-kvm@2.12.0-1.amzn2", "CVE-2017-5715")]  # one CVE: the CVE is the id
    assert f.details.aliases == ("ALAS2-2018-942",)
    assert f.details.fixed_version == "10:1.5.3-141.amzn2.5.3" and len(found) == 1


# --- Ubuntu OSV and GHSA --------------------------------------------------------------------


def test_ubuntu_osv_priorities_and_matching(sqlite_store: Store) -> None:
    batch = read_source(str(DATA / "ubuntu-osv"))
    (adv,) = batch.advisories
    eco = {a.ecosystem: a for a in adv.affected}
    assert eco["ubuntu:22.04"].severity == "medium"  # ecosystem_specific.ubuntu_priority
    assert eco["ubuntu:22.04"].fixed_version == "1.4.0-11ubuntu2.4"
    import_sources(sqlite_store, [str(DATA / "ubuntu-osv")])
    jammy = Distro(id="ubuntu", version_id="22.04", version_codename="jammy")
    found = _findings(
        sqlite_store,
        jammy,
        Package(type="deb", name="libpam0g", version="1.4.0-11ubuntu2.3", source_name="pam"),
        Package(type="deb", name="libpam-modules", version="1.4.0-11ubuntu2.4", source_name="pam"),
    )
    f = found[("libpam0g@1.4.0-11ubuntu2.3", "CVE-2024-22365")]
    # The Ubuntu priority is the severity (CVSS 5.5 would say medium too; the priority decides).
    assert (f.severity, f.details.fixed_version) == (Severity.MEDIUM, "1.4.0-11ubuntu2.4")
    assert f.details.data_source == "osv:ubuntu:22.04" and len(found) == 1


def test_ghsa_database_specific_and_cve_alias(tmp_path: Path, advisories_dir: Path) -> None:
    """A GHSA record (github/advisory-database OSV export): its ``database_specific.severity`` is
    the record's rating and its CVE alias makes the CVE the finding's id."""
    batch = read_source(str(advisories_dir / "osv-samples" / "GHSA-9v2f-6vcg-3hgv.json"))
    (adv,) = batch.advisories
    assert adv.severity == "critical" and any(a.startswith("CVE-") for a in adv.aliases)


def test_db_import_recognises_each_format_and_status_lists_them(tmp_path: Path) -> None:
    from tests.scanning.scan_cli_support import run

    db = f"sqlite:///{tmp_path / 's.db'}"
    sources = [VEX, DATA / "amazon", DATA / "ubuntu-osv", DATA / "suse-vex"]
    proc = run("db", "import", *map(str, sources), "--db", db)
    assert proc.returncode == 0, proc.stderr
    for kind in ("(redhat-vex)", "(amazon-updateinfo)", "(osv)", "(suse-vex)"):
        assert kind in proc.stdout
    status = json.loads(run("db", "status", "--db", db, "--format", "json").stdout)
    assert sorted(s["kind"] for s in status["sources"]) == [
        "amazon-updateinfo", "osv", "redhat-vex", "suse-vex"
    ]  # fmt: skip
    assert {"redhat:9", "redhat:7", "amazon:2023", "ubuntu:22.04", "sles:15.5"} <= set(
        status["by_ecosystem"]
    )


# --- End to end: a real rpmdb written by rpm, read by the rpm cataloger ----------------------

_RPMS = (  # name, version, release, epoch, modularity label
    ("curl", "7.76.1", "26.el9_3", "", ""),
    ("go-toolset", "1.19.6", "1.module+el8.8.0+18400+c2f6a4ca", "Epoch: 1\n",
     "go-toolset:rhel8:8080020230419142419:b754926a"),
    ("snakeyaml", "1.11", "1.el7", "", ""),
)  # fmt: skip


def _real_rpmdb() -> Path:
    """rpmdb.sqlite written by the real rpm from packages built with rpmbuild (the modular one
    built with the ``modularitylabel`` macro, as module builds set it)."""
    from tests.scanning.catalogers.catalog_inputs import _SPEC, _once, run

    def build(d: Path) -> None:
        for name, version, release, epoch, label in _RPMS:
            spec = d / f"{name}.spec"
            spec.write_text(
                _SPEC.format(
                    name=name, version=version, release=release, epoch=epoch, license="MIT"
                )
            )
            extra = ["--define", f"modularitylabel {label}"] if label else []
            run(["rpmbuild", "-bb", "--define", f"_topdir {d / 'top'}", *extra, str(spec)])
        root = d / "root"
        root.mkdir()
        run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "--initdb"])
        rpms = sorted(map(str, (d / "top/RPMS").rglob("*.rpm")))
        run(
            [
                "rpm",
                "--root",
                str(root),
                "--dbpath",
                "/var/lib/rpm",
                "-i",
                "--nodeps",
                "--justdb",
                *rpms,
            ]
        )

    return _once("rpm-vendor-advisories", build) / "root/var/lib/rpm/rpmdb.sqlite"


def test_real_rpmdb_against_red_hat_data(sqlite_store: Store, tmp_path: Path) -> None:
    import shutil

    from stockade.scanning.catalogers.rpm import RpmCataloger
    from stockade.scanning.interface import FileEntry
    from tests.support import require

    require(shutil.which("rpmbuild") is not None and shutil.which("rpm") is not None, "rpmbuild")
    db = _real_rpmdb()
    data = db.read_bytes()
    entry = FileEntry(path="/var/lib/rpm/rpmdb.sqlite", mode=0o100644, size=len(data), data=data)
    # the cataloger also lists the files each package owns (type os-owned-files): packages only
    packages = tuple(p for p in RpmCataloger().catalog([entry]) if p.type == "rpm")
    labels = {p.name: p.meta("modularity-label") for p in packages}
    assert labels["go-toolset"] == "go-toolset:rhel8:8080020230419142419:b754926a"
    import_sources(sqlite_store, [str(VEX)])
    import_sources(sqlite_store, [str(_module_fix(tmp_path))])

    def ids(distro: Distro) -> set[tuple[str, str, str | None]]:
        report = Matcher(sqlite_store).run(Inventory(source="t", distro=distro, packages=packages))
        return {(f.details.package, f.id, f.details.fixed_version) for f in report.findings}

    assert ids(Distro(id="rhel", version_id="9.3")) == {
        ("curl", "CVE-2023-38545", "7.76.1-26.el9_3.2")
    }
    assert ids(Distro(id="rocky", version_id="9.3")) == {
        ("curl", "CVE-2023-38545", "7.76.1-26.el9_3.2")
    }
    assert ids(Distro(id="rhel", version_id="8.8")) == {
        ("go-toolset", "CVE-2024-24786", "1:1.20.10-1.module+el8.9.0+20382+04f7fe80")
    }
    assert ids(Distro(id="rhel", version_id="7.9")) == {("snakeyaml", "CVE-2022-38752", None)}


# --- SUSE CSAF VEX --------------------------------------------------------------------------


def test_suse_vex_import_and_match(sqlite_store: Store) -> None:
    batch = read_source(str(DATA / "suse-vex"))
    assert batch.kind == "suse-vex" and not batch.problems
    (adv,) = batch.advisories
    aff = {(a.ecosystem, a.package): a for a in adv.affected}
    # "recommended" is SUSE's fixed package; SP4-LTSS (cpe sles-ltss) is not read.
    fixed = aff[("sles:15.5", "python311-aiohttp")]
    assert (fixed.fix_state, fixed.fixed_version, fixed.severity) == (
        FixState.FIXED, "3.9.3-150400.10.14.1", "moderate"
    )  # fmt: skip
    assert aff[("sles:15.4", "python311-aiohttp")].fix_state == FixState.WONT_FIX
    assert aff[("sles:15.4", "python-aiohttp")].fix_state == FixState.WONT_FIX
    assert {e for e, _ in aff} == {"sles:15.4", "sles:15.5", "sles:15.6", "sles:15.7"}
    import_sources(sqlite_store, [str(DATA / "suse-vex")])
    # SUSE lists binary RPMs: an installed RPM is matched by its own name and version.
    found = _findings(
        sqlite_store,
        Distro(id="sles", version_id="15.5"),
        _rpm("python311-aiohttp", "3.8.5-150400.10.8.1", "python-aiohttp@3.8.5-150400.10.8.1"),
        _rpm("python3-aiohttp", "3.6.0-1.1", "python-aiohttp@3.6.0-1.1"),  # not listed for SP5
    )
    f = found[("python311-aiohttp@3.8.5-150400.10.8.1", "CVE-2023-47627")]
    assert (f.details.fixed_version, f.severity, f.details.data_source) == (
        "3.9.3-150400.10.14.1", Severity.MEDIUM, "suse-vex"
    )  # fmt: skip
    assert len(found) == 1
    found = _findings(
        sqlite_store,
        Distro(id="sles", version_id="15.4"),
        _rpm("python311-aiohttp", "3.9.3-150400.10.14.1", "python-aiohttp@3.9.3-150400.10.14.1"),
    )
    f = found[("python311-aiohttp@3.9.3-150400.10.14.1", "CVE-2023-47627")]
    assert (f.details.fix_state, f.details.fixed_version) == ("wont-fix", None)


def test_a_subpackage_versioned_apart_is_compared_at_its_source_rpms_epoch(
    sqlite_store: Store,
) -> None:
    """perl-Errno 1.28-421.el8 (epoch 0) is built from perl-5.26.3-421.el8.src.rpm, whose epoch
    is 4 (perl-libs 4:5.26.3-421.el8, same source); a dnf transcript of an el8 install lists
    both. Red Hat's fix of CVE-2020-12723 for RHEL 8 is perl 4:5.26.3-417.el8_3 (as grype
    reported it, anchore/grype#437). Compared as 5.26.3-421.el8 at perl-Errno's own epoch 0,
    every fix of perl read perl-Errno as affected for ever. The source's epoch is that of a
    binary built at the source's own version, else the one the advisories give the source."""
    from stockade.scanning.advisories.model import (
        Advisory,
        Affected,
        EventKind,
        ImportBatch,
        VersionRange,
    )
    from stockade.scanning.advisories.store import write_batches

    fix = "4:5.26.3-417.el8_3"
    adv = Advisory(
        id="CVE-2020-12723",
        source="redhat-vex",
        affected=(
            Affected(
                ecosystem="redhat:8",
                package="perl",
                ranges=(
                    VersionRange(
                        type="ECOSYSTEM",
                        events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, fix)),
                    ),
                ),
                fix_state=FixState.FIXED,
                fixed_version=fix,
            ),
        ),
    )
    write_batches(sqlite_store, [ImportBatch(source="rh", kind="redhat-vex", advisories=[adv])])
    rhel8 = Distro(id="rhel", version_id="8.8")
    errno = _rpm("perl-Errno", "1.28-421.el8", "perl@5.26.3-421.el8")
    libs = _rpm("perl-libs", "4:5.26.3-421.el8", "perl@5.26.3-421.el8", epoch="4")
    assert _findings(sqlite_store, rhel8, errno, libs) == {}
    assert _findings(sqlite_store, rhel8, errno) == {}  # the epoch the advisories give perl
    old = _rpm("perl-Errno", "1.28-416.el8", "perl@5.26.3-416.el8")
    (f,) = _findings(sqlite_store, rhel8, old).values()
    assert f.details.fixed_version == fix
    # Rocky 8 is looked up in rocky:8 (data of its own, none for perl) and in redhat:8: one
    # installed version for both
    rocky = Affected(ecosystem="rocky:8", package="bash", ranges=adv.affected[0].ranges)
    own = Advisory(id="CVE-2099-0001", source="osv", affected=(rocky,))
    write_batches(sqlite_store, [ImportBatch(source="rocky", kind="osv", advisories=[own])])
    assert _findings(sqlite_store, Distro(id="rocky", version_id="8.8"), errno) == {}
