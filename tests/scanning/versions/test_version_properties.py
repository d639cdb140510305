"""Property tests: total order for every scheme, and agreement with real oracles
(``dpkg --compare-versions``, ``packaging``, rpm's ``rpm.vercmp`` and Maven's
``ComparableVersion``)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from stockade.scanning.versions import SCHEMES
from tests.support import require

_alnum = "abcz0123456789"
dpkg_versions = st.builds(
    lambda epoch, up, rev: f"{epoch}{up}{rev}",
    st.sampled_from(["", "", "1:", "2:"]),
    st.from_regex(r"[0-9][0-9a-z.+~]{0,8}", fullmatch=True),
    st.one_of(st.just(""), st.from_regex(r"-[0-9a-z.+~]{1,6}", fullmatch=True)),
)
apk_versions = st.from_regex(
    r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}[a-c]?(_(alpha|beta|pre|rc|p|git)[0-9]?)?(-r[0-9])?",
    fullmatch=True,
)
rpm_versions = st.from_regex(
    r"([0-9]:)?[0-9a-z][0-9a-z.~^_]{0,7}(-[0-9a-z.~^]{1,5})?", fullmatch=True
)
# A version or a release alone (rpm.vercmp compares one of them, not epoch:version-release).
rpm_segments = st.from_regex(r"[0-9a-zA-Z][0-9a-zA-Z.~^_+]{0,9}", fullmatch=True)
pep440_versions = st.builds(
    lambda rel, pre, post, dev: f"{rel}{pre}{post}{dev}",
    st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", fullmatch=True),
    st.sampled_from(["", "a1", "b2", "rc1", "rc10"]),
    st.sampled_from(["", ".post1", ".post2"]),
    st.sampled_from(["", ".dev0", ".dev3"]),
)
semver_versions = st.from_regex(
    r"v?[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}(-[0-9a-z]{1,3}(\.[0-9a-z]{1,3}){0,2})?", fullmatch=True
)
go_versions = st.one_of(
    semver_versions.map(lambda v: "v" + v.lstrip("v")),
    st.from_regex(r"v0\.0\.0-20[0-9]{12}-[0-9a-f]{12}", fullmatch=True),
)
maven_versions = st.from_regex(
    r"[0-9]{1,2}([.-]?([0-9]{1,2}|alpha|beta|rc|sp|ga|final|snapshot|foo|a|m)){0,4}",
    fullmatch=True,
)
# Few tokens, so that neighbours often differ only in a separator or a qualifier.
maven_near_versions = st.from_regex(r"1([.-]?(0|1|rc|a|b|m|ga|final|sp|foo)){0,4}", fullmatch=True)
rubygems_versions = st.from_regex(
    r"[0-9]{1,2}(\.([0-9]{1,2}|a|b|pre|rc[0-9]?)){0,3}(-[a-z0-9]{1,3})?", fullmatch=True
)
composer_versions = st.from_regex(
    r"v?[0-9]{1,2}(\.[0-9]{1,2}){0,3}(-(alpha|beta|RC|patch|p|b)[0-9]?)?(-dev)?", fullmatch=True
)
nuget_versions = st.from_regex(
    r"[0-9]{1,2}(\.[0-9]{1,2}){0,3}(-[0-9a-zA-Z]{1,3}(\.[0-9a-zA-Z]{1,3}){0,2})?", fullmatch=True
)

STRATEGIES = {
    "dpkg": dpkg_versions,
    "apk": apk_versions,
    "rpm": rpm_versions,
    "pep440": pep440_versions,
    "semver": semver_versions,
    "go": go_versions,
    "maven": maven_versions,
    "rubygems": rubygems_versions,
    "composer": composer_versions,
    "nuget": nuget_versions,
}


@pytest.mark.parametrize("scheme", sorted(STRATEGIES))
def test_total_order(scheme: str) -> None:
    """Each example is a handful of versions and every pair and triple of them is checked: more
    triples per generated version than three versions per example (drawing dominates the time)."""
    s = SCHEMES[scheme]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(STRATEGIES[scheme], min_size=3, max_size=9))
    def check(versions: list[str]) -> None:
        cmp = {(a, b): s.compare(a, b) for a in versions for b in versions}
        for a in versions:
            assert cmp[a, a] == 0
        for (a, b), ab in cmp.items():
            assert ab == -cmp[b, a]  # antisymmetry
        for a, b, c in itertools.product(versions, repeat=3):
            if cmp[a, b] <= 0 and cmp[b, c] <= 0:
                assert cmp[a, c] <= 0, (a, b, c)  # transitivity
        srt = sorted(versions, key=s.key)  # the key orders as compare does
        assert all(cmp[x, y] <= 0 for x, y in itertools.pairwise(srt))

    check()


def _dpkg_says(a: str, op: str, b: str) -> bool:
    res = subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True, timeout=10)
    return res.returncode == 0


def test_dpkg_agrees_with_real_dpkg() -> None:
    require(shutil.which("dpkg") is not None, "dpkg is not installed")
    s = SCHEMES["dpkg"]

    @settings(max_examples=250, deadline=None)
    @given(dpkg_versions, dpkg_versions)
    def check(a: str, b: str) -> None:
        ours = s.compare(a, b)
        op = {-1: "lt", 0: "eq", 1: "gt"}[ours]
        assert _dpkg_says(a, op, b), f"dpkg disagrees: {a} {op} {b}"

    check()


def test_pep440_agrees_with_packaging() -> None:
    s = SCHEMES["pep440"]

    @settings(max_examples=400, deadline=None)
    @given(pep440_versions, pep440_versions)
    def check(a: str, b: str) -> None:
        va, vb = Version(a), Version(b)
        assert s.compare(a, b) == (va > vb) - (va < vb)

    check()


# Maven's own implementation, as Debian ships it (libmaven3-core-java, which the maven package
# pulls in): its command line compares each version given with the next one.
_MAVEN_ARTIFACT = "/usr/share/java/maven3-artifact.jar"
_MAVEN_SAYS = re.compile(r"^   (\S+) (<|>|==) (\S+)$", re.M)


def test_maven_agrees_with_maven_comparable_version() -> None:
    require(
        shutil.which("java") is not None and os.path.exists(_MAVEN_ARTIFACT),
        f"java and {_MAVEN_ARTIFACT} (libmaven3-core-java)",
    )
    s = SCHEMES["maven"]

    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.one_of(maven_versions, maven_near_versions), min_size=100, max_size=300))
    def check(versions: list[str]) -> None:
        out = subprocess.run(
            ["java", "-cp", _MAVEN_ARTIFACT, "org.apache.maven.artifact.versioning."
             "ComparableVersion", *versions],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        said = _MAVEN_SAYS.findall(out)
        assert len(said) == len(versions) - 1
        for a, op, b in said:
            assert s.compare(a, b) == {"<": -1, "==": 0, ">": 1}[op], (a, op, b)

    check()


def test_rpm_agrees_with_rpmvercmp() -> None:
    """``rpm.vercmp`` (rpm's Lua binding of rpmvercmp) on generated pairs, in one rpm run."""
    require(shutil.which("rpm") is not None, "rpm is not installed")
    s = SCHEMES["rpm"]

    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(rpm_segments, rpm_segments), min_size=50, max_size=200))
    def check(pairs: list[tuple[str, str]]) -> None:
        script = "".join(f'print(rpm.vercmp("{a}", "{b}"), " ")\n' for a, b in pairs)
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
            f.write(script)
            f.flush()
            out = subprocess.run(
                ["rpm", "--eval", f"%{{lua: dofile('{f.name}')}}"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout.split()  # fmt: skip
        assert len(out) == len(pairs)
        for (a, b), said in zip(pairs, out, strict=True):
            assert s.compare(a, b) == int(said), (a, b, said)

    check()
