"""Semantic versions as npm and crates.io use them.

Loose forms are accepted: a leading ``v`` or ``=``, missing minor or patch (``v1.2`` is ``1.2.0``).
Build metadata (``+...``) is ignored. A release sorts after all its prereleases; prerelease
identifiers compare numerically when numeric, and numeric identifiers sort before alphanumeric ones.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError

_RE = re.compile(
    r"[v=]?\s*(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z.-]+))?\Z"
)
_RELEASE = ((2, ""),)


def prerelease_key(pre: str | None) -> tuple[tuple[int, object], ...]:
    if not pre:
        return _RELEASE  # sorts after any prerelease, whose first identifier has rank 0 or 1
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))


def parse_named(scheme: str, text: str) -> tuple[object, ...]:
    parts = text.split(".")
    if len(parts) == 3 and all(parts) and text.isascii() and "".join(parts).isdigit():  # 1.2.3
        return (int(parts[0]), int(parts[1]), int(parts[2]), _RELEASE)
    return _parse_match(scheme, text)


def _parse_match(scheme: str, text: str) -> tuple[object, ...]:
    """The general form (``parse_named``'s reference for plain MAJOR.MINOR.PATCH)."""
    m = _RE.match(text.strip())
    if not m:
        raise VersionError(scheme, text, "expected MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]")
    pre = m["pre"]
    return (int(m["major"]), int(m["minor"] or 0), int(m["patch"] or 0), prerelease_key(pre))


def parse(text: str) -> tuple[object, ...]:
    return parse_named("semver", text)


SCHEME = Scheme("semver", parse)
