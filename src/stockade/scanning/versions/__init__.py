"""Version comparators, one module per scheme, and the registry from ecosystem to scheme.

>>> scheme_for("debian:12").compare("1:2.0-1", "2.1-1")
1
"""

from __future__ import annotations

from functools import lru_cache

from stockade.scanning.versions import (
    apk,
    composer,
    dpkg,
    golang,
    maven,
    nuget,
    pep440,
    rpm,
    rubygems,
    semver,
)
from stockade.scanning.versions.interface import Scheme, VersionError

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        dpkg.SCHEME,
        apk.SCHEME,
        rpm.SCHEME,
        pep440.SCHEME,
        semver.SCHEME,
        golang.SCHEME,
        maven.SCHEME,
        rubygems.SCHEME,
        composer.SCHEME,
        nuget.SCHEME,
    )
}
SCHEMES["npm"] = semver.SCHEME
SCHEMES["cargo"] = semver.SCHEME  # Cargo versions are SemVer 2.0 (the semver crate)

# Normalized ecosystem (the part before ":" for distributions) -> scheme name.
ECOSYSTEM_SCHEMES: dict[str, str] = {
    "debian": "dpkg",
    "ubuntu": "dpkg",
    "ubuntu-fips": "dpkg",
    "ubuntu-realtime": "dpkg",
    "ubuntu-bluefield": "dpkg",
    "alpine": "apk",
    "wolfi": "apk",
    "chainguard": "apk",
    "redhat": "rpm",
    "rocky": "rpm",
    "almalinux": "rpm",
    "amazon": "rpm",
    "sles": "rpm",
    "sle-micro": "rpm",
    "sle-micro-rancher": "rpm",
    "sl-micro": "rpm",
    "opensuse-leap": "rpm",
    "opensuse-leap-micro": "rpm",
    "suse": "rpm",
    "opensuse": "rpm",
    "mageia": "rpm",
    "pypi": "pep440",
    "npm": "semver",
    "crates.io": "semver",
    "go": "go",
    "maven": "maven",
    "rubygems": "rubygems",
    "packagist": "composer",
    "nuget": "nuget",
}


@lru_cache(maxsize=1024)
def scheme_for(ecosystem: str) -> Scheme | None:
    """The scheme for a normalized ecosystem (``debian:12``, ``pypi``), or None if unsupported."""
    name = ECOSYSTEM_SCHEMES.get(ecosystem.split(":", 1)[0])
    return SCHEMES[name] if name else None


__all__ = ["ECOSYSTEM_SCHEMES", "SCHEMES", "Scheme", "VersionError", "scheme_for"]
