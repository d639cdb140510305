"""Debian ground truth from newer security builds: for packages installed on this machine that
``bookworm-security`` has a newer build of, ``apt-get download`` that build and read its
changelog. The CVEs named in the entries above the installed version are the ones fixed since:
with tracker-shaped data built from that changelog, the matcher must report exactly those for the
installed packages (read from the real /var/lib/dpkg/status), and nothing for the new builds.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stockade.scanning.advisories.update import import_sources
from stockade.scanning.interface import Distro, Inventory, Package
from stockade.scanning.matcher import Matcher
from stockade.store import Store
from tests.conftest import require

_HEADER = re.compile(r"^([a-z0-9][a-z0-9.+-]+) \(([^)\s]+)\) [^;]+;")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
PREFERRED = (
    "openssl",
    "jq",
    "libexpat1",
    "libgcrypt20",
    "libde265-0",
    "apt",
    "libcups2",
    "liblcms2-2",
)
WANTED = 4


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], timeout=10).returncode == 0


def _upgradable_from_security() -> list[str]:
    out = subprocess.run(
        ["apt", "list", "--upgradable"], capture_output=True, text=True, timeout=60
    ).stdout
    names = {
        line.split("/", 1)[0] for line in out.splitlines() if "-security" in line.split(" ", 1)[0]
    }
    return [n for n in PREFERRED if n in names]


def _installed(name: str) -> Package:
    fmt = "${Package}\t${Version}\t${source:Package}\t${source:Version}"
    out = subprocess.run(
        ["dpkg-query", "-W", f"-f={fmt}", name], capture_output=True, text=True, timeout=30
    )
    pkg, version, source, source_version = out.stdout.split("\t")
    return Package(
        type="deb", name=pkg, version=version, source_name=source, source_version=source_version
    )


def _changelog(deb: Path, work: Path, name: str) -> list[tuple[str, set[str]]]:
    root = work / name
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=60)
    path = root / "usr/share/doc" / name / "changelog.Debian.gz"
    if not path.is_file() or path.is_symlink():
        return []
    entries: list[tuple[str, set[str]]] = []
    with gzip.open(path, "rt", errors="replace") as fh:
        for line in fh:
            m = _HEADER.match(line)
            if m:
                entries.append((m.group(2), set()))
            elif entries:
                entries[-1][1].update(_CVE.findall(line))
    return entries


@pytest.fixture(scope="module")
def security_builds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Package, str, list]]:
    require(all(shutil.which(t) for t in ("apt", "apt-get", "dpkg-deb", "dpkg-query")), "apt tools")
    names = _upgradable_from_security()
    if not names:
        # A fully patched machine has nothing to compare: not a missing prerequisite (CI cannot
        # provide one), and test_matcher_debian_truth covers the same matching from changelogs.
        pytest.skip("no installed package has a newer bookworm-security build")
    work = tmp_path_factory.mktemp("security")
    out = []
    for name in names:
        res = subprocess.run(
            ["apt-get", "download", name], cwd=work, capture_output=True, timeout=180
        )
        debs = sorted(work.glob(f"{name}_*.deb"))
        require(res.returncode == 0 and bool(debs), f"apt-get download {name} failed")
        entries = _changelog(debs[0], work, name)
        installed = _installed(name)
        if entries and any(v == installed.source_version for v, _ in entries):
            out.append((installed, entries[0][0], entries))
        if len(out) == WANTED:
            break
    require(bool(out), "no downloaded security build carries its own changelog")
    return out


def test_cves_fixed_by_newer_security_builds(
    sqlite_store: Store, tmp_path: Path, security_builds: list
) -> None:
    tracker: dict = {}
    expected: dict[str, dict[str, str]] = {}
    for installed, _newest, entries in security_builds:
        first_mention: dict[str, int] = {}
        for i, (_v, cves) in enumerate(entries):
            for cve in cves:
                first_mention[cve] = i
        lowest: list[str] = []
        for version, _ in entries:
            lowest.append(version if not lowest or _dpkg_lt(version, lowest[-1]) else lowest[-1])
        fixed_at = {cve: lowest[i] for cve, i in first_mention.items()}
        tracker[installed.source_name] = {
            cve: {
                "releases": {
                    "bookworm": {"status": "resolved", "fixed_version": v, "urgency": "high"}
                }
            }
            for cve, v in fixed_at.items()
        }
        here = next(i for i, (v, _) in enumerate(entries) if v == installed.source_version)
        expected[installed.name] = {
            cve: fixed_at[cve] for cve, i in first_mention.items() if i < here
        }
    (tmp_path / "tracker.json").write_text(json.dumps(tracker))
    import_sources(sqlite_store, [str(tmp_path / "tracker.json")])
    distro = Distro(id="debian", version_id="12", version_codename="bookworm")
    inv = Inventory(source="host", distro=distro, packages=tuple(b[0] for b in security_builds))
    got: dict[str, dict[str, str | None]] = {b[0].name: {} for b in security_builds}
    for f in Matcher(sqlite_store).run(inv).findings:
        got[f.details.package][f.id] = f.details.fixed_version
    assert got == expected
    assert any(expected.values()), "the newer builds fix no CVE: nothing was checked"
    newest = Inventory(
        source="upgraded",
        distro=distro,
        packages=tuple(
            Package(type="deb", name=p.name, version=v, source_name=p.source_name)
            for p, v, _ in security_builds
        ),
    )
    assert Matcher(sqlite_store).run(newest).findings == ()
