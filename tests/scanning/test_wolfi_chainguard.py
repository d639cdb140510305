"""Wolfi and Chainguard: their apk secdb files (no ``distroversion``, an ``apkurl`` and a
``urlprefix`` instead) go through the Alpine secdb reader as the rolling ecosystems ``wolfi`` and
``chainguard``; an image whose os-release says ``ID=wolfi`` is matched against them by apk
origin and apk version order, end to end through ``db import`` and ``scan rootfs``."""

from __future__ import annotations

import json
from pathlib import Path

from stockade.scanning.advisories.reader import read_source
from stockade.scanning.advisories.update import import_sources
from stockade.scanning.distro import parse_os_release
from stockade.scanning.interface import Distro, Inventory, Package
from stockade.scanning.matcher import Matcher
from stockade.store import Store
from tests.scanning.scan_cli_support import run

DATA = Path(__file__).parent / "data" / "advisories"
WOLFI = DATA / "wolfi" / "security.json"
CHAINGUARD = DATA / "chainguard" / "security.json"
# /etc/os-release of cgr.dev/chainguard/wolfi-base (as its README prints it).
WOLFI_OS_RELEASE = b"""ID=wolfi
NAME="Wolfi"
PRETTY_NAME="Wolfi"
VERSION_ID="20230201"
HOME_URL="https://wolfi.dev"
"""


def test_the_rolling_secdbs_are_read_as_their_distributions() -> None:
    wolfi = read_source(str(WOLFI))
    assert wolfi.kind == "wolfi-secdb" and wolfi.problems == []
    assert {a.ecosystem for adv in wolfi.advisories for a in adv.affected} == {"wolfi"}
    by_id = {(adv.id, adv.affected[0].package): adv for adv in wolfi.advisories}
    assert by_id[("CVE-2022-3602", "openssl")].affected[0].fixed_version == "3.0.7-r0"
    assert by_id[("CVE-2022-3602", "openssl")].source == "wolfi-secdb"
    # "0": not affected (apko's Go dependency CVEs Wolfi ruled out), as in Alpine's secdb.
    assert ("CVE-2023-45283", "apko") not in by_id
    chainguard = read_source(str(CHAINGUARD))
    assert chainguard.kind == "chainguard-secdb" and chainguard.problems == []
    assert {a.ecosystem for adv in chainguard.advisories for a in adv.affected} == {"chainguard"}


def test_an_apk_secdb_of_another_publisher_is_refused_with_a_reason(tmp_path: Path) -> None:
    doc = json.loads(WOLFI.read_text())
    doc["urlprefix"] = "https://packages.example.org"
    (tmp_path / "security.json").write_text(json.dumps(doc))
    batch = read_source(str(tmp_path / "security.json"))
    assert batch.advisories == []
    assert any("neither Wolfi's" in p.message for p in batch.problems)


def _inventory(distro_id: str, packages: list[tuple[str, str, str]]) -> Inventory:
    return Inventory(
        source=distro_id,
        distro=Distro(id=distro_id, version_id="20230201"),
        packages=tuple(
            Package(type="apk", name=n, version=v, source_name=o) for n, o, v in packages
        ),
    )


def test_wolfi_and_chainguard_packages_match_their_own_data(sqlite_store: Store) -> None:
    import_sources(sqlite_store, [str(WOLFI), str(CHAINGUARD)])
    distro = parse_os_release(WOLFI_OS_RELEASE)
    assert distro is not None and distro.id == "wolfi"
    wolfi = _inventory(
        distro.id,
        [
            ("libcrypto3", "openssl", "3.0.6-r0"),
            ("zlib", "zlib", "1.2.12-r2"),
            ("coreutils", "coreutils", "9.1-r0"),
            ("busybox", "busybox", "1.35.0-r3"),
        ],
    )
    report = Matcher(sqlite_store).run(wolfi)
    got = {(f.details.package, f.id, f.details.fixed_version) for f in report.findings}
    assert got == {
        ("libcrypto3", "CVE-2022-3358", "3.0.7-r0"),
        ("libcrypto3", "CVE-2022-3602", "3.0.7-r0"),
        ("libcrypto3", "CVE-2022-3786", "3.0.7-r0"),
        ("zlib", "CVE-2022-37434", "1.2.12-r3"),
    }
    assert {f.details.data_source for f in report.findings} == {"wolfi-secdb"}
    assert report.unchecked == ()
    # Chainguard's own data for a Chainguard image; its apk order: 9.2_p1 after 9.2, before 9.3.
    chainguard = _inventory(
        "chainguard",
        [
            ("openssh-client", "openssh", "9.2-r0"),
            ("openssh-server", "openssh", "9.2_p1-r0"),
            ("libcrypto3", "openssl", "3.0.7-r1"),
        ],
    )
    got = {
        (f.details.package, f.details.installed_version, f.id)
        for f in Matcher(sqlite_store).run(chainguard).findings
    }
    assert ("openssh-client", "9.2-r0", "CVE-2023-25136") in got
    assert not any(p == "openssh-server" for p, _v, _id in got)
    assert ("libcrypto3", "3.0.7-r1", "CVE-2022-3996") not in got
    assert ("libcrypto3", "3.0.7-r1", "CVE-2023-0286") in got


def test_a_wolfi_image_without_wolfi_data_is_unchecked(sqlite_store: Store) -> None:
    import_sources(sqlite_store, [str(CHAINGUARD)])
    report = Matcher(sqlite_store).run(_inventory("wolfi", [("zlib", "zlib", "1.2.12-r2")]))
    assert report.findings == ()
    assert [(u.ecosystem, u.packages) for u in report.unchecked] == [("wolfi", 1)]


APK_DB = b"""C:Q1abc=
P:libcrypto3
V:3.0.6-r0
A:x86_64
L:Apache-2.0
o:openssl

C:Q1def=
P:zlib
V:1.2.12-r3
A:x86_64
L:Zlib
o:zlib

C:Q1ghi=
P:busybox
V:1.35.0-r2
A:x86_64
L:GPL-2.0-only
o:busybox
"""


def test_import_and_scan_a_wolfi_root_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "etc/os-release").write_bytes(WOLFI_OS_RELEASE)
    (root / "lib/apk/db/installed").write_bytes(APK_DB)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    out = run("db", "import", str(WOLFI), "--db", db)
    assert out.returncode == 0, out.stderr
    out = run("scan", "rootfs", str(root), "--db", db, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    found = {(f["package"], f["id"]) for f in report["findings"]}
    assert found == {
        ("libcrypto3", "CVE-2022-3358"),
        ("libcrypto3", "CVE-2022-3602"),
        ("libcrypto3", "CVE-2022-3786"),
        ("busybox", "CVE-2022-28391"),
        ("busybox", "CVE-2022-30065"),
    }
    assert report["coverage"]["unchecked"] == []
