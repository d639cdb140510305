"""NuGet versions (``NuGet.Versioning``'s ``NuGetVersion``): SemVer 2.0 with a fourth numeric
part (``1.0.0.1``, legacy). Missing parts are 0, so ``1.0 == 1.0.0 == 1.0.0.0``; a release sorts
after its prereleases; prerelease labels compare per dot-separated identifier, numbers
numerically and before text, text *case-insensitively* (``1.0.0-BETA == 1.0.0-beta``), fewer
identifiers first when one list is a prefix of the other. Build metadata (``+...``) is ignored.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError

_RE = re.compile(
    r"\s*(?P<nums>\d+(?:\.\d+){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?\s*\Z"
)
_RELEASE = ((2, 0, ""),)


def parse(text: str) -> tuple[object, ...]:
    m = _RE.match(text)
    if not m:
        raise VersionError(
            "nuget", text, "expected MAJOR[.MINOR[.PATCH[.REVISION]]][-LABEL][+META]"
        )
    nums = [int(n) for n in m["nums"].split(".")]
    nums += [0] * (4 - len(nums))
    pre = m["pre"]
    labels = (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in pre.split("."))
        if pre
        else _RELEASE
    )
    return (*nums, labels)


SCHEME = Scheme("nuget", parse)
