"""Ordered golden lists: every version of a group sorts before every version of later groups."""

from __future__ import annotations

import itertools

import pytest

from stockade.scanning.versions import SCHEMES, VersionError, scheme_for

# Each entry is a group of equal versions; groups are in ascending order.
GOLDEN: dict[str, list[list[str]]] = {
    "dpkg": [
        ["0.9"],
        ["1.0~~"],
        ["1.0~~a"],
        ["1.0~"],
        ["1.0~rc1"],
        ["1.0", "1.0-0", "0:1.0"],
        ["1.0-1~bpo1"],
        ["1.0-1"],
        ["1.0-1+b1"],
        ["1.0-1.1"],
        ["1.0a"],
        ["1.0+dfsg"],
        ["1.0.1"],
        ["1.2.3-1"],
        ["1.10"],
        ["1:0.1"],
        ["1:0.1-1"],
        ["2:0"],
    ],
    "apk": [
        ["1.0_alpha1"],
        ["1.0_alpha2"],
        ["1.0_beta"],
        ["1.0_pre1"],
        ["1.0_rc1"],
        ["1.0", "1.0-r0"],
        ["1.0-r1"],
        ["1.0_p1"],
        ["1.0a"],
        ["1.0b-r3"],
        ["1.0.0"],
        ["1.0.1_rc1"],
        ["1.0.1"],
        ["1.2"],
        ["1.10"],
        ["2.0_git20200101"],
    ],
    "rpm": [
        ["1.0~rc1"],
        ["1.0", "1_0", "1..0"],
        ["1.0^git1"],
        ["1.0^git2"],
        ["1.0a"],
        ["1.0.1"],
        ["1.0.1-1.el9"],
        ["1.0.1-2.el9"],
        ["1.0.1-10.el9"],
        ["1.1"],
        ["1.10"],
        ["1:0.1"],
    ],
    "pep440": [
        ["1.0.dev1"],
        ["1.0a1"],
        ["1.0a2.dev1"],
        ["1.0b1"],
        ["1.0rc1", "1.0c1"],
        ["1.0", "1.0.0", "v1.0"],
        ["1.0.post1"],
        ["1.0.1"],
        ["1.1"],
        ["1!0.1"],
    ],
    "semver": [
        ["0.9.9"],
        ["1.0.0-alpha"],
        ["1.0.0-alpha.1"],
        ["1.0.0-alpha.beta"],
        ["1.0.0-beta"],
        ["1.0.0-beta.2"],
        ["1.0.0-beta.11"],
        ["1.0.0-rc.1"],
        ["1.0.0", "v1.0.0", "=1.0.0", "1.0.0+build.5", "1.0", "v1"],
        ["1.0.1"],
        ["1.2"],
        ["1.10.0"],
        ["2.0.0"],
    ],
    "go": [
        ["v0.0.0-20190101000000-aaaaaaaaaaaa"],
        ["v0.0.0-20210101000000-abcdef123456"],
        ["v0.1.0"],
        ["v1.2.3"],
        ["v1.2.4-0.20210101000000-abcdef123456"],
        ["v1.2.4-rc.1"],
        ["v1.2.4"],
        ["go1.21rc1"],
        ["go1.21.0", "1.21.0"],
        ["1.21.3"],
        ["go1.22.0"],
        ["v2.0.0+incompatible", "v2.0.0"],
    ],
    "maven": [
        ["1-alpha-1", "1-a1", "1-alpha1"],
        ["1-alpha-2"],
        ["1-beta-1", "1-b1"],
        ["1-milestone-1", "1-m1"],
        ["1-rc-1", "1-cr-1", "1.rc1", "1.0.RC1", "1.0-rc1"],
        ["1-rc-2", "1.0.0-RC2"],
        ["1-snapshot"],
        ["1", "1.0", "1.0.0", "1-ga", "1.final", "1-0", "1.release"],
        ["1-sp"],
        ["1-abc", "1.abc", "1.0.abc"],
        ["1-xyz"],
        ["1-1"],
        ["1.0.1"],
        ["1.1"],
        ["1.2"],
        ["1.10"],
        ["2.0-alpha1"],
        ["2.0"],
    ],
    # Gem::Version#<=>: letters make a prerelease, "-" reads as ".pre.", trailing zeros drop
    "rubygems": [
        ["0.9"],
        ["1.a", "1.0.a", "1.0.0.a"],
        ["1.0.a1", "1.0.a.1"],
        ["1.0.b1"],
        ["1.0-pre"],
        ["1.0.pre", "1.0.0.pre"],
        ["1.0.pre.1"],
        ["1.0.rc1"],
        ["1.0.rc2"],
        ["1.0.rc10"],
        ["1", "1.0", "1.0.0", " 1.0.0 "],
        ["1.0.0.1"],
        ["1.0.1"],
        ["1.1.a"],
        ["1.1"],
        ["1.10"],
        ["2.0.0.rc1"],
        ["2"],
    ],
    # composer/semver normalization, then PHP version_compare
    "composer": [
        ["1.0-dev", "1.0.0-dev", "1.0.0.0-dev"],
        ["1.0.0-alpha1", "1.0.0-a1", "1.0.0alpha1", "v1.0.0-ALPHA1"],
        ["1.0.0-alpha2"],
        ["1.0.0-beta1-dev"],
        ["1.0.0-beta1", "1.0.0-b1", "1.0.0-beta.1"],
        ["1.0.0-beta2"],
        ["1.0.0-beta10"],
        ["1.0.0-RC1", "1.0.0-rc1", "1.0.0-RC1+build.5"],
        ["1.0.0", "v1.0.0", "1.0", "1", "1.0.0.0", "1.0.0-stable", "1.0.0+20240101", "v1.0+b.1"],
        ["1.0.0-patch1", "1.0.0-pl1", "1.0.0-p1", "1.0.0.pl1"],
        ["1.0.0.1"],
        ["1.0.1"],
        ["1.2"],
        ["1.10"],
        ["2010-01-02"],  # a date version: not padded to four parts
        ["2010.01.02"],  # a classic version: 2010.01.02.0
    ],
    # Cargo: SemVer 2.0 as the semver crate orders it (ASCII order of text identifiers)
    "cargo": [
        ["0.1.0"],
        ["1.0.0-Alpha"],
        ["1.0.0-alpha"],
        ["1.0.0-alpha.1"],
        ["1.0.0-alpha.beta"],
        ["1.0.0-beta.2"],
        ["1.0.0-beta.11"],
        ["1.0.0-rc.1"],
        ["1.0.0", "1.0.0+build.1", "1.0.0+20240101"],
        ["1.0.1"],
        ["1.10.0"],
    ],
    # NuGet.Versioning: four parts, case-insensitive labels, metadata ignored
    "nuget": [
        ["1.0.0-1"],
        ["1.0.0-alpha", "1.0.0-ALPHA", "1.0.0-Alpha+sha.1"],
        ["1.0.0-alpha.1"],
        ["1.0.0-alpha.beta"],
        ["1.0.0-beta"],
        ["1.0.0-beta.2"],
        ["1.0.0-beta.11"],
        ["1.0.0-beta01"],
        ["1.0.0-beta02"],
        ["1.0.0-rc.1"],
        ["1.0.0", "1.0", "1", "1.0.0.0", "1.0.0+build"],
        ["1.0.0.1"],
        ["1.0.1-preview.1"],
        ["1.0.1"],
        ["1.10"],
        ["2.0.0"],
    ],
}


def _pairs(scheme: str):
    groups = GOLDEN[scheme]
    for gi, gj in itertools.combinations_with_replacement(range(len(groups)), 2):
        for a in groups[gi]:
            for b in groups[gj]:
                yield a, b, 0 if gi == gj else -1


@pytest.mark.parametrize("scheme", sorted(GOLDEN))
def test_golden_order(scheme: str) -> None:
    s = SCHEMES[scheme]
    wrong = []
    for a, b, want in _pairs(scheme):
        if s.compare(a, b) != want or s.compare(b, a) != -want:
            wrong.append((a, b, want, s.compare(a, b)))
    assert not wrong


@pytest.mark.parametrize(
    ("scheme", "text"),
    [
        ("dpkg", "abc"),
        ("dpkg", "x:1.0"),
        ("dpkg", "1.0-a b"),
        ("dpkg", ""),
        ("apk", "1.0-beta"),
        ("apk", "v1"),
        ("rpm", "1.0 beta"),
        ("rpm", ""),
        ("pep440", "not a version"),
        ("semver", "1.2.x"),
        ("semver", "latest"),
        ("go", "1.2.3.4.5"),
        ("go", "master"),
        ("maven", ""),
        ("maven", "1 0"),
        ("rubygems", "1..0"),
        ("rubygems", "a1"),
        ("composer", "dev-main"),
        ("composer", "1.0.0-foo"),
        ("nuget", "1.0.0.0.0"),
        ("nuget", "v1.0.0"),
    ],
)
def test_bad_versions_raise_one_error_type_with_the_text(scheme: str, text: str) -> None:
    with pytest.raises(VersionError) as info:
        SCHEMES[scheme].key(text)
    assert info.value.text == text and info.value.scheme in (scheme, "go", "semver")
    assert info.value.exit_code == 3


def test_registry_maps_ecosystems() -> None:
    assert scheme_for("debian:12").name == "dpkg"
    assert scheme_for("alpine:3.19").name == "apk"
    assert scheme_for("pypi").name == "pep440"
    assert scheme_for("maven").name == "maven"
    assert scheme_for("go").name == "go"
    assert scheme_for("npm").name == "semver"
    assert scheme_for("rubygems").name == "rubygems"
    assert scheme_for("packagist").name == "composer"
    assert scheme_for("nuget").name == "nuget"
    assert scheme_for("crates.io").name == "semver"
    assert scheme_for("hex") is None


def test_keys_are_cached_and_immutable() -> None:
    s = SCHEMES["dpkg"]
    assert s.key("1.2-3") is s.key("1.2-3")
    assert isinstance(s.key("1.2-3"), tuple)


# Pairs from apk-tools' own test data (alpinelinux/apk-tools ``test/unit/version.data`` at
# 90b974f): a component after the first with a leading zero is a decimal fraction.
APK_FACTS = [
    ("4.5.14", ">", "4.09-r1"),
    ("8.2.0", "<", "8.2.001"),
    ("8.2.0015", "<", "8.2.002"),
    ("1.2.07.8", "<", "1.2.12.04"),
    ("1.2.12.04", "<", "1.2.12.05"),
    ("2.02.06", "<", "2.02.10"),
    ("2.8.6-r2", ">", "2.02-r1"),
    ("1.07-r1", "<", "1.07.5"),
    ("1.07", "<", "1.19"),
    ("2.04", "<", "2.4.3-r1"),
    ("0.98", "<", "1.00"),
    ("1.06-r6", "<", "006"),
    ("021109-r3", "<", "20060512"),
    ("3.9.8-r5", ">", "2.01.01_alpha10"),
    ("0.01", "<", "0.06"),
]


@pytest.mark.parametrize(("a", "op", "b"), APK_FACTS)
def test_apk_leading_zero_components(a: str, op: str, b: str) -> None:
    want = {"<": -1, "=": 0, ">": 1}[op]
    assert (SCHEMES["apk"].compare(a, b), SCHEMES["apk"].compare(b, a)) == (want, -want)


# Spring, Hibernate and Jetty releases as Maven Central spells them, with a dot or a hyphen
# before the qualifier; the order is the one Maven 3.8.7's ComparableVersion gives
# (``java -cp maven3-artifact.jar org.apache.maven.artifact.versioning.ComparableVersion ...``).
MAVEN_REAL_ORDER = [
    ["5.3.0-M1", "5.3.0.M1"],
    ["5.3.0.RC1", "5.3.0-RC1"],
    ["5.3.0-RC2", "5.3.0.RC2"],
    ["5.3.0", "5.3.0.RELEASE", "5.3.0.Final"],
    ["5.3.0.SP1", "5.3.0-SP1"],
    ["5.3.0.v20210927"],
    ["5.3.1.Alpha1"],
    ["5.3.1.Beta2"],
    ["5.3.1.CR1", "5.3.1-RC1"],
    ["5.3.1.Final"],
]


def test_maven_qualifier_after_dot_or_hyphen() -> None:
    s = SCHEMES["maven"]
    groups = MAVEN_REAL_ORDER
    for (i, gi), (j, gj) in itertools.combinations_with_replacement(enumerate(groups), 2):
        for a in gi:
            for b in gj:
                assert (s.compare(a, b), s.compare(b, a)) == ((0, 0) if i == j else (-1, 1)), (a, b)


# The ordered lists Maven's own ComparableVersion tests use (qualifiers, then numbers).
MAVEN_ORDERED = [
    [
        "1-alpha2snapshot",
        "1-alpha2",
        "1-alpha-123",
        "1-beta-2",
        "1-beta123",
        "1-m2",
        "1-m11",
        "1-rc",
        "1-cr2",
        "1-rc123",
        "1-SNAPSHOT",
        "1",
        "1-sp",
        "1-sp2",
        "1-sp123",
        "1-abc",
        "1-def",
        "1-pom-1",
        "1-1-snapshot",
        "1-1",
        "1-2",
        "1-123",
    ],
    [
        "2.0",
        "2.0.a",  # = "2.0.0.a" = "2.0-a": a qualifier after a dot nests as after "-"
        "2-1",
        "2.0.2",
        "2.0.123",
        "2.1.0",
        "2.1-a",
        "2.1b",
        "2.1-c",
        "2.1-1",
        "2.1.0.1",
        "2.2",
        "2.123",
        "11.a2",
        "11.a11",
        "11.b2",
        "11.b11",
        "11.m2",
        "11.m11",
        "11",
        "11.a",
        "11b",
        "11c",
        "11m",
    ],
]


@pytest.mark.parametrize("ordered", MAVEN_ORDERED)
def test_maven_reference_order(ordered: list[str]) -> None:
    s = SCHEMES["maven"]
    assert all(s.compare(a, b) == -1 for a, b in itertools.combinations(ordered, 2))
