"""Go module versions: semver with a ``v`` prefix.

Pseudo-versions (``v0.0.0-20210101000000-abcdef123456``, ``vX.Y.Z-0.2021...-hash``) are semver
prereleases and sort by their timestamps as Go intends. ``+incompatible`` is build metadata and
ignored. Toolchain versions of the standard library (``go1.21.3``, ``go1.22rc1``) are read too.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError
from stockade.scanning.versions.semver import parse_named

_TOOLCHAIN = re.compile(r"(?:go)?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:(beta|rc)([0-9]+))?\Z")


def parse(text: str) -> tuple[object, ...]:
    v = text.strip()
    if v.startswith("v"):
        return parse_named("go", v[1:])
    m = _TOOLCHAIN.match(v)
    if m:
        pre = f"-{m[4]}.{m[5]}" if m[4] else ""
        return parse_named("go", f"{m[1]}.{m[2]}.{m[3] or 0}{pre}")
    if v.count(".") == 2:  # the Go vulndb writes stdlib versions as plain semver: "1.22.0-0"
        return parse_named("go", v)
    raise VersionError("go", text, "expected vMAJOR.MINOR.PATCH or a go1.N toolchain version")


SCHEME = Scheme("go", parse)
