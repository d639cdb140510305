"""Java archives without pom.properties: identity from the file name and manifest, Maven
coordinates only where the manifest confirms them. The golden table holds the real project's
jar next to look-alikes (same file name, borrowed manifest fields, prefixed names); matched
against the real Log4Shell record (GHSA-jfh8-c2jp-5v3q), only the real log4j-core is a finding."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from stockade.scanning.advisories.update import import_sources
from stockade.scanning.catalogers import finalize
from stockade.scanning.catalogers.java import JavaArchiveCataloger
from stockade.scanning.interface import FileEntry, Inventory
from stockade.scanning.matcher import Matcher
from stockade.scanning.sbom import write
from stockade.store import Store
from tests.support import require

OSV = Path(__file__).resolve().parent / "data" / "ecosystems" / "osv"
DEBIAN_JARS = Path("/usr/share/java")


def jar(manifest: dict[str, str], extra: dict[str, bytes] | None = None) -> bytes:
    text = "Manifest-Version: 1.0\n" + "".join(f"{k}: {v}\n" for k, v in manifest.items())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", text)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def without_poms(path: Path) -> bytes:
    """A real jar with its META-INF/maven/ entries removed (as shading or repackaging leaves it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            if not info.filename.startswith("META-INF/maven/"):
                dst.writestr(info, src.read(info))
    return buf.getvalue()


CORE = "org.apache.logging.log4j.core"
# (file name, manifest, expected (group, version), expected group-source)
GOLDEN = [
    # the real project's jar: the manifest confirms the coordinates advisories use
    ("log4j-core-2.14.1.jar", {"Bundle-SymbolicName": CORE, "Bundle-Version": "2.14.1"},
     ("org.apache.logging.log4j", "2.14.1"), "known-artifact:Bundle-SymbolicName"),
    ("app/lib/log4j-core.jar", {"Automatic-Module-Name": CORE, "Implementation-Version": "2.16.0"},
     ("org.apache.logging.log4j", "2.16.0"), "known-artifact:Automatic-Module-Name"),
    # look-alikes: the same file name without the project's manifest
    ("log4j-core-2.14.1.jar", {"Bundle-SymbolicName": "com.example.log4j-core"},
     ("com.example.log4j-core", "2.14.1"), "manifest:Bundle-SymbolicName"),
    ("log4j-core-2.14.1.jar", {"Created-By": "1.8.0"}, ("", "2.14.1"), ""),
    # look-alikes: another artifact name carrying the project's manifest fields
    ("log4j-core-extras-2.14.1.jar", {"Bundle-SymbolicName": CORE},
     (CORE, "2.14.1"), "manifest:Bundle-SymbolicName"),
    ("my-log4j-core-2.14.1.jar", {"Implementation-Vendor-Id": "org.apache.logging.log4j"},
     ("org.apache.logging.log4j", "2.14.1"), "manifest:Implementation-Vendor-Id"),
    # Debian NAME-API-RELEASE: log4j 1.2's jar as Debian names it
    ("log4j-1.2-1.2.17.jar", {"Bundle-SymbolicName": "log4j", "Bundle-Version": "1.2.17"},
     ("log4j", "1.2.17"), "known-artifact:Bundle-SymbolicName"),
]  # fmt: skip


def _catalog(files: list[FileEntry]) -> Inventory:
    pkgs = JavaArchiveCataloger().catalog(files)
    return finalize(Inventory(source="dir:/", packages=tuple(pkgs)))


@pytest.mark.parametrize(("name", "manifest", "expected", "group_source"), GOLDEN)
def test_identity_from_the_manifest(
    name: str, manifest: dict[str, str], expected: tuple[str, str], group_source: str
) -> None:
    path = f"/opt/{name}"
    [pkg] = _catalog([FileEntry(path=path, mode=0o100644, size=1, data=jar(manifest))]).packages
    assert (pkg.meta("maven-group") or "", pkg.version) == expected
    assert (pkg.meta("group-source") or "") == group_source
    assert pkg.meta("identity-source") in ("file name", "manifest")


def test_only_the_real_log4j_core_is_a_finding(sqlite_store: Store) -> None:
    import_sources(sqlite_store, [str(OSV)])
    files = [
        FileEntry(path=f"/opt/{i}/{name}", mode=0o100644, size=1, data=jar(manifest))
        for i, (name, manifest, _, _) in enumerate(GOLDEN)
    ]
    inv = _catalog(files)
    report = Matcher(sqlite_store).run(inv)
    got = {(f.details.locations[0], f.details.installed_version, f.id) for f in report.findings}
    assert got == {("/opt/0/log4j-core-2.14.1.jar", "2.14.1", "CVE-2021-44228")}


def test_real_debian_jars_without_their_poms() -> None:
    """Debian's own jars with pom.properties stripped: the manifest alone gives the Maven
    coordinates of the known artifacts, and says so."""
    names = {
        "commons-io-2.11.0.jar": "commons-io",
        "commons-lang3-3.12.0.jar": "org.apache.commons",
    }
    present = {n: g for n, g in names.items() if (DEBIAN_JARS / n).exists()}
    require(bool(present), "Debian's commons-io / commons-lang3 jars are not installed here")
    files = [
        FileEntry(
            path=f"/usr/share/java/{n}", mode=0o100644, size=1, data=without_poms(DEBIAN_JARS / n)
        )
        for n in present
    ]
    inv = _catalog(files)
    got = {p.name: p for p in inv.packages}
    for n, group in present.items():
        artifact = n.rsplit("-", 1)[0]
        pkg = got[artifact]
        assert pkg.meta("maven-group") == group, (n, pkg.metadata)
        assert (pkg.meta("group-source") or "").startswith("known-artifact:")
    cdx = json.loads(write(inv, "cyclonedx"))
    props = {
        (p["name"], p["value"])
        for c in cdx["components"]
        for p in c.get("properties", [])
        if p["name"].startswith("stockade:metadata:")
    }
    assert any(name == "stockade:metadata:group-source" for name, _ in props)
