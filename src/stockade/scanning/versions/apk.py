"""Alpine apk versions: ``1.2.3[letter][_suffix[N]]...[-rN]``.

Order: numeric components left to right (a missing component sorts first), then the optional
letter, then suffixes (``_alpha < _beta < _pre < _rc <`` none ``< _cvs < _svn < _git < _hg < _p``),
then the ``-rN`` package revision. A trailing ``~<hash>`` (git snapshot marker) is ignored.

The first component is a number; a later one with a leading zero is a decimal fraction, as in
Gentoo's versions that apk follows (``4.09 < 4.5``, ``8.2.0015 < 8.2.002``, ``1.0999 < 1.1000``;
apk-tools' ``test/unit/version.data``): it becomes the exact fraction ``0.<digits>``, below every
component without a leading zero. Such a key has no byte form in the store's spans
(``versions.sortable``), so the matcher compares it in Python.
"""

from __future__ import annotations

import re
from fractions import Fraction

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


def _component(digits: str) -> int | Fraction:
    """A component after the first: a number, or with a leading zero a decimal fraction (``0``
    and ``00`` are zero either way)."""
    if digits[0] != "0" or not digits.strip("0"):
        return int(digits)
    return Fraction(int(digits), 10 ** len(digits))


def parse(text: str) -> tuple[object, ...]:
    m = _RE.match(text.strip())
    if not m:
        raise VersionError("apk", text, "expected digits[.digits][letter][_suffix][-rN]")
    first, *rest = m["nums"].split(".")
    nums = (int(first), *(_component(x) for x in rest))
    letter = ord(m["letter"]) if m["letter"] else 0
    sufs = tuple((_SUFFIX_RANK[s], int(n or 0)) for s, n in _SUF.findall(m["suffixes"]))
    return (nums, letter, (*sufs, (0, 0)), int(m["rev"] or 0))


SCHEME = Scheme("apk", parse)
