"""Alpine apk versions: ``1.2.3[letter][_suffix[N]]...[-rN]``.

Order: numeric components left to right (a missing component sorts first), then the optional
letter, then suffixes (``_alpha < _beta < _pre < _rc <`` none ``< _cvs < _svn < _git < _hg < _p``),
then the ``-rN`` package revision. A trailing ``~<hash>`` (git snapshot marker) is ignored.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError

_SUFFIX_RANK = {
    "alpha": -4,
    "beta": -3,
    "pre": -2,
    "rc": -1,
    "cvs": 1,
    "svn": 2,
    "git": 3,
    "hg": 4,
    "p": 5,
}
_RE = re.compile(
    r"(?P<nums>[0-9]+(?:\.[0-9]+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*)"
    r"(?:~[0-9a-f]+)?(?:-r(?P<rev>[0-9]+))?\Z"
)
_SUF = re.compile(r"_([a-z]+)([0-9]*)")


def parse(text: str) -> tuple[object, ...]:
    m = _RE.match(text.strip())
    if not m:
        raise VersionError("apk", text, "expected digits[.digits][letter][_suffix][-rN]")
    nums = tuple(int(x) for x in m["nums"].split("."))
    letter = ord(m["letter"]) if m["letter"] else 0
    sufs = tuple((_SUFFIX_RANK[s], int(n or 0)) for s, n in _SUF.findall(m["suffixes"]))
    return (nums, letter, (*sufs, (0, 0)), int(m["rev"] or 0))


SCHEME = Scheme("apk", parse)
