"""Normalized ecosystem and package names shared by importers and the matcher.

Distributions are ``<distro>:<release>`` with the release as the os-release ``VERSION_ID`` major
(Debian, RHEL) or major.minor (Alpine, Ubuntu): ``debian:12``, ``alpine:3.19``, ``ubuntu:22.04``.
Language ecosystems are lower-case OSV names: ``pypi``, ``npm``, ``maven``, ``go``, ``crates.io``.
"""

from __future__ import annotations

import re

DEBIAN_CODENAMES = {
    "wheezy": "7", "jessie": "8", "stretch": "9", "buster": "10", "bullseye": "11",
    "bookworm": "12", "trixie": "13", "forky": "14", "duke": "15", "sid": "sid",
}  # fmt: skip
LANGUAGE = {
    "pypi": "pypi", "npm": "npm", "maven": "maven", "go": "go", "crates.io": "crates.io",
    "rubygems": "rubygems", "nuget": "nuget", "packagist": "packagist", "hex": "hex", "pub": "pub",
}  # fmt: skip
_PEP503 = re.compile(r"[-_.]+")
# Canonical's OSV ecosystems of a release's stock packages: "22.04:LTS", "23.10", and Ubuntu Pro's
# ESM updates of the same packages ("Pro:18.04:LTS", +esmN versions). Its FIPS, FIPS-updates,
# FIPS-preview, Realtime and BlueField ecosystems are other builds with their own versions
# (3.0.5-0ubuntu0.1+Fips2.1): read as the release, their fixes reported stock packages affected.
_UBUNTU = re.compile(r"(?:Pro:)?(\d+\.\d+)(?::LTS)?", re.IGNORECASE)
# The FIPS streams: the certified builds ("FIPS", frozen), their security updates
# ("FIPS-updates") and the builds under certification ("FIPS-preview"). Their builds carry
# "fips" in the Debian revision (1.1.1f-1ubuntu2.fips.7.1, 3.0.5-0ubuntu0.1+Fips2.1, 2fips3)
# and are matched as ``ubuntu-fips:N`` (see ``separate_build``), never as the stock release.
_UBUNTU_FIPS = re.compile(r"Pro:FIPS(-updates|-preview)?:(\d+\.\d+)(?::LTS)?", re.IGNORECASE)
# Kernels built apart, each with its own ecosystem and source names: the Realtime kernels
# ("Pro:22.04:LTS:Realtime:Kernel": linux-realtime, linux-intel-iot-realtime) and NVIDIA
# BlueField's ("Nvidia-BlueField:22.04:LTS": linux-bluefield).
_UBUNTU_KERNELS = (
    (
        "ubuntu-realtime",
        re.compile(
            r"Pro:(\d+\.\d+)(?::LTS)?:Realtime:Kernel|Pro:Realtime:(\d+\.\d+)(?::LTS)?",
            re.IGNORECASE,
        ),
        re.compile(r"linux(?:-[a-z0-9.-]+)?-realtime(?:-[0-9.]+)?"),
    ),
    (
        "ubuntu-bluefield",
        re.compile(
            r"Nvidia-BlueField:(\d+\.\d+)(?::LTS)?|(\d+\.\d+)(?::LTS)?:for:NVIDIA:BlueField",
            re.IGNORECASE,
        ),
        re.compile(r"linux-bluefield(?:-[0-9.]+)?"),
    ),
)


class UnknownEcosystem(ValueError):
    """An ecosystem string this store does not know how to key."""


def _major_minor(release: str) -> str:
    m = re.match(r"v?(\d+)\.(\d+)", release)  # "3.20_alpha20240329" -> "3.20"
    return f"{m.group(1)}.{m.group(2)}" if m else release.lstrip("v")


def from_osv(text: str) -> str:
    """``Debian:12`` -> ``debian:12``, ``Alpine:v3.19`` -> ``alpine:3.19``, ``PyPI`` -> ``pypi``."""
    head, _, rest = text.strip().partition(":")
    low = head.lower()
    if low in LANGUAGE and not rest:
        return LANGUAGE[low]
    if low == "debian" and rest:
        return f"debian:{DEBIAN_CODENAMES.get(rest.lower(), rest.split('.')[0])}"
    if low == "alpine" and rest:
        return f"alpine:{_major_minor(rest)}"
    if low == "ubuntu" and rest:
        m = _UBUNTU.fullmatch(rest)
        if m:
            return f"ubuntu:{m.group(1)}"
        m = _UBUNTU_FIPS.fullmatch(rest)
        if m:
            return f"ubuntu-fips:{m.group(2)}"
        for name, stream, _sources in _UBUNTU_KERNELS:
            m = stream.fullmatch(rest)
            if m:
                return f"{name}:{m.group(1) or m.group(2)}"
        if re.search(r"(?:^|:)\d+\.\d+(?::|$)", rest):
            raise UnknownEcosystem(
                f"{text!r} is a separate build of the release that is not read here: its"
                " versions are not the stock packages' and are not matched against them"
            )
    if low in ("rocky linux", "almalinux") and rest:
        return f"{low.split()[0]}:{rest.split('.')[0]}"
    if low == "red hat" and rest:
        m = re.search(r":(\d+)(?:[:.]|$)", ":" + rest)
        if m:
            return f"redhat:{m.group(1)}"
    if low in ("wolfi", "chainguard"):
        return low
    raise UnknownEcosystem(f"unknown or unsupported ecosystem {text!r}")


FIPS_STREAMS = ("fips", "fips-updates", "fips-preview")


def fips_stream(text: str) -> str | None:
    """The FIPS stream of an OSV ecosystem (``Ubuntu:Pro:FIPS-updates:20.04:LTS`` ->
    ``fips-updates``), as the image's apt sources name it (``esm.ubuntu.com/fips-updates/ubuntu``),
    or None for any other ecosystem."""
    head, _, rest = text.strip().partition(":")
    m = _UBUNTU_FIPS.fullmatch(rest) if head.lower() == "ubuntu" else None
    return None if m is None else "fips" + (m.group(1) or "").lower()


def fips_package(stream: str, name: str) -> str:
    """The stored name of a FIPS stream's entry: ``fips-updates/openssl``. The three streams
    share the ecosystem ``ubuntu-fips:N`` (one coverage) and are told apart by this prefix, so
    that an image whose apt sources follow one stream is matched against that stream only."""
    return f"{stream}/{name}"


def frozen_fips_stream(text: str) -> bool:
    """Canonical's certified (``Ubuntu:Pro:FIPS:20.04:LTS``) and preview FIPS streams: an open
    range there (``introduced 0``: not fixed in that stream) would reach the FIPS-updates
    builds that carry the fix; their entries are matched by their ``versions`` lists (the
    stream's builds) instead."""
    return fips_stream(text) in ("fips", "fips-preview")


def separate_build(release_ecosystem: str, source: str, version: str) -> str | None:
    """The ecosystem of a separate build installed on ``ubuntu:N``, else None:
    ``ubuntu-fips:N`` for a FIPS build (a Debian revision carrying "fips":
    ``1.1.1f-1ubuntu2.fips.7.1``, ``3.0.5-0ubuntu0.1+Fips2.1``; or a FIPS kernel, whose version
    is plain: ``linux-fips``, ``linux-aws-fips``), ``ubuntu-realtime:N`` / ``ubuntu-bluefield:N``
    for those kernels' sources. Such a build is not the stock package: compared with stock
    fixes, ``.fips.7.1`` sorts above ``1.1.1f-1ubuntu2.17`` (every FIPS openssl read as fixed),
    and the stock data never names these kernels (they counted as checked and clean)."""
    head, _, release = release_ecosystem.partition(":")
    if head != "ubuntu" or not release:
        return None
    _upstream, dash, revision = version.rpartition("-")
    if (dash and "fips" in revision.lower()) or _FIPS_KERNEL.fullmatch(source):
        return f"ubuntu-fips:{release}"
    for name, _stream, sources in _UBUNTU_KERNELS:
        if sources.fullmatch(source):
            return f"{name}:{release}"
    return None


_FIPS_KERNEL = re.compile(r"linux(?:-[a-z0-9.]+)?-fips")


def from_distro(distro_id: str, version_id: str, codename: str = "") -> str | None:
    """The advisory ecosystem for an image's os-release, or None for an unknown distribution."""
    d = distro_id.lower()
    if d == "debian":
        major = version_id.split(".")[0] if version_id else DEBIAN_CODENAMES.get(codename, "")
        return f"debian:{major}" if major else None
    if d in ("alpine", "ubuntu"):
        return f"{d}:{_major_minor(version_id)}" if version_id else None
    if d in ("rhel", "centos", "rocky", "almalinux"):
        name = {"rhel": "redhat", "centos": "redhat"}.get(d, d)
        return f"{name}:{version_id.split('.')[0]}" if version_id else None
    if d in ("wolfi", "chainguard"):
        return d
    if d == "amzn":
        return f"amazon:{version_id.split('.')[0]}" if version_id else None
    if d in SUSE_FAMILY:
        return f"{d}:{version_id}" if version_id else None  # "sles:15.5", "sle-micro:5.5"
    return None


# os-release IDs of the SUSE family, as SUSE's CSAF platforms are normalized (see csaf_vex).
# SLE Micro for Rancher (Elemental, Harvester) says ID=sle-micro-rancher.
SUSE_FAMILY = (
    "sles",
    "sle-micro",
    "sle-micro-rancher",
    "sl-micro",
    "opensuse-leap",
    "opensuse-leap-micro",
)
# Releases whose advisories name binary packages (Amazon updateinfo, SUSE CSAF), not source ones.
BINARY_KEYED = ("amazon", *SUSE_FAMILY)


def keyed_by_binary(ecosystem: str) -> bool:
    return ecosystem.split(":", 1)[0] in BINARY_KEYED


# Distributions whose release N is also matched against another's release N (see
# docs/vulnerability-data.md for what is assumed): the rebuilds that declare binary compatibility
# with RHEL, and SLE Micro for Rancher, which SUSE ships with SLE Micro's packages (SUSE's
# advisories list both products with the same fixed packages).
COMPATIBLE = {"rocky": "redhat", "almalinux": "redhat", "sle-micro-rancher": "sle-micro"}


def compatible_release(ecosystem: str) -> str | None:
    """``rocky:9`` -> ``redhat:9``: the release whose advisories also apply, or None."""
    head, _, release = ecosystem.partition(":")
    other = COMPATIBLE.get(head)
    return f"{other}:{release}" if other and release else None


def package_name(ecosystem: str, name: str) -> str:
    """The normalized package name used as the lookup key within an ecosystem."""
    if ecosystem == "pypi":
        return _PEP503.sub("-", name).lower()
    if ecosystem in ("maven", "nuget", "packagist", "crates.io"):
        return name.strip().lower()
    return name.strip()
