"""Debian ground truth from this machine's own changelogs.

Every ``/usr/share/doc/*/changelog.Debian.gz`` names the CVEs each Debian version fixed (backports
included: ``3.0.x-1~deb12u1``). From them we build tracker-shaped data (``bookworm`` resolved at the
first version that mentions the CVE), then ask the matcher about an older, real version of each
package. The expected answer comes from the changelog history (the old version lacks exactly the
fixes named in newer entries) and the real ``dpkg --compare-versions``, not from our comparator:
every CVE fixed after the old version must be reported with its fix, and no other. At the
newest version nothing may be reported (patched backports are not false positives).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import require

from stockade.scanning.advisories.update import import_sources
from stockade.scanning.interface import Distro, Inventory, Package
from stockade.scanning.matcher import Matcher
from stockade.store import Store

_HEADER = re.compile(r"^([a-z0-9][a-z0-9.+-]+) \(([^)\s]+)\) [^;]+;")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
MAX_PACKAGES = 60
MAX_ENTRIES = 10  # the newest entries of each changelog are enough


def _changelogs() -> dict[str, list[tuple[str, set[str]]]]:
    """source package -> [(version, CVEs named in that entry)], newest first."""
    out: dict[str, list[tuple[str, set[str]]]] = {}
    for path in sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz")):
        if path.is_symlink():
            continue
        entries: list[tuple[str, set[str]]] = []
        source = None
        try:
            with gzip.open(path, "rt", errors="replace") as fh:
                for line in fh:
                    m = _HEADER.match(line)
                    if m:
                        if len(entries) == MAX_ENTRIES:
                            break
                        source = source or m.group(1)
                        entries.append((m.group(2), set()))
                    elif entries:
                        entries[-1][1].update(_CVE.findall(line))
        except (OSError, EOFError):
            continue
        if source and source not in out and len(entries) >= 3 and any(c for _, c in entries):
            out[source] = entries
    return out


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], timeout=10).returncode == 0


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    require(shutil.which("dpkg") is not None, "dpkg is needed as the version oracle")
    logs = _changelogs()
    # Keep the cost bounded: skip the two packages with a thousand CVEs each, take the rest by name.
    names = [n for n in sorted(logs) if n not in ("linux", "chromium")][:MAX_PACKAGES]
    require(len(names) >= 10, "fewer than 10 Debian changelogs with CVEs on this machine")
    tracker: dict = {}  # every package's CVEs go in, also those without a usable old version
    cases: dict = {}
    for name in names:
        entries = logs[name]
        # The fix reaches bookworm with the first upload, in history order, that contains it: the
        # lowest version among the entry naming the CVE and every newer entry. (A backport such
        # as 590-2.1~deb12u1 sorts below the unstable 590-2.1 whose changelog it carries.)
        first_mention: dict[str, int] = {}
        for i, (_version, cves) in enumerate(entries):
            for cve in cves:
                first_mention[cve] = i  # newest first: the last index seen is the first fix
        lowest_since: list[str] = []
        for version, _cves in entries:
            prev = lowest_since[-1] if lowest_since else version
            lowest_since.append(version if _dpkg_lt(version, prev) else prev)
        fixed_at = {cve: lowest_since[i] for cve, i in first_mention.items()}
        tracker[name] = {
            cve: {
                "releases": {
                    "bookworm": {"status": "resolved", "fixed_version": v, "urgency": "medium"}
                }
            }
            for cve, v in fixed_at.items()
        }
        # An old version whose place in history matches its place in version order (an unstable
        # upload above a later bookworm backport was never installable on bookworm).
        k = next(
            (
                k
                for k in range(min(3, len(entries) - 1), 0, -1)
                if _dpkg_lt(entries[k][0], lowest_since[k - 1])
            ),
            None,
        )
        if k is None:
            continue
        cases[name] = {
            "old": entries[k][0],
            "newest": entries[0][0],
            # By history, not by version order: version k lacks exactly the fixes named above it.
            "expected": {cve: fixed_at[cve] for cve, i in first_mention.items() if i < k},
        }
    path = tmp_path_factory.mktemp("truth") / "tracker.json"
    path.write_text(json.dumps(tracker))
    return path, cases


def test_cves_fixed_since_an_older_version_are_reported(
    sqlite_store: Store, truth: tuple[Path, dict]
) -> None:
    path, cases = truth
    import_sources(sqlite_store, [str(path)])
    distro = Distro(id="debian", version_id="12", version_codename="bookworm")
    old = Inventory(
        source="old",
        distro=distro,
        packages=tuple(
            Package(
                type="deb",
                name=f"{n}-bin",
                version=c["old"],
                source_name=n,
                source_version=c["old"],
            )
            for n, c in cases.items()
        ),
    )
    report = Matcher(sqlite_store).run(old)
    got: dict[str, dict[str, str | None]] = {n: {} for n in cases}
    for f in report.findings:
        got[f.details.package.removesuffix("-bin")][f.id] = f.details.fixed_version
    assert len(cases) >= 10
    expected = {n: c["expected"] for n, c in cases.items()}
    assert got == expected
    assert sum(len(v) for v in expected.values()) >= 20  # the check is about something
    newest = Inventory(
        source="new",
        distro=distro,
        packages=tuple(Package(type="deb", name=n, version=c["newest"]) for n, c in cases.items()),
    )
    assert Matcher(sqlite_store).run(newest).findings == ()
