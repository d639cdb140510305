"""Debian package versions: ``[epoch:]upstream[-revision]`` compared as dpkg does.

Within upstream and revision, dpkg alternates non-digit runs (compared character by character
with ``~`` before the end of the run, letters before other characters) and digit runs (compared
as numbers). Each non-digit run becomes a tuple of weights ending in the end-of-run weight 0, so
plain tuple comparison reproduces dpkg's order; a final 0-weight run stands for "nothing left".
"""

from __future__ import annotations

import re
from functools import lru_cache

from stockade.scanning.versions.interface import Scheme, VersionError

_UPSTREAM = re.compile(r"[0-9][A-Za-z0-9.+~:-]*\Z")
_REVISION = re.compile(r"[A-Za-z0-9.+~]+\Z")
_END = (0,)


def _weight(c: str) -> int:
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


_WEIGHTS = {chr(i): _weight(chr(i)) for i in range(128)}
_RUNS = re.compile(r"([^0-9]*)([0-9]*)")


def _run_key(run: str) -> tuple[int, ...]:
    try:
        return (*map(_WEIGHTS.__getitem__, run), 0)
    except KeyError:  # non-ASCII: weigh character by character
        return (*map(_weight, run), 0)


_DOT = _run_key(".")


@lru_cache(maxsize=16_384)
def part_key(s: str) -> tuple[object, ...]:
    """The key of an upstream version or a revision. Cached: revisions (``1``, ``2+deb12u1``)
    and upstream versions repeat across the versions of one package and of a release."""
    if s.isascii():
        numbers = s.split(".")
        if all(n.isdigit() for n in numbers):  # "1.2.3", "5": most parts, no regular expression
            out: list[object] = [_END, int(numbers[0])]
            for n in numbers[1:]:
                out.append(_DOT)
                out.append(int(n))
            out.append(_END)
            return tuple(out)
    return _runs_key(s)


def _runs_key(s: str) -> tuple[object, ...]:
    """The general form: alternate non-digit and digit runs (``part_key``'s reference)."""
    out: list[object] = []
    for letters, digits in _RUNS.findall(s):
        if not letters and not digits:
            continue  # findall's final empty match
        out.append(_run_key(letters))
        out.append(int(digits) if digits else 0)
    if not out:  # an empty part equals "0" ("1.0" == "1.0-0")
        out = [_END, 0]
    out.append(_END)
    return tuple(out)


def parse(text: str) -> tuple[object, ...]:
    epoch, upstream, revision = split(text)
    return (epoch, part_key(upstream), part_key(revision))


def split(text: str) -> tuple[int, str, str]:
    """The epoch, upstream version and revision of a version text (raises VersionError)."""
    v = text.strip()
    epoch = 0
    if ":" in v:
        head, v = v.split(":", 1)
        if not head.isdigit():
            raise VersionError("dpkg", text, "epoch is not a number")
        epoch = int(head)
    upstream, revision = v, ""
    if "-" in v:
        upstream, revision = v.rsplit("-", 1)
        if not _REVISION.match(revision):
            raise VersionError("dpkg", text, "bad characters in the revision")
    if not upstream or not _UPSTREAM.match(upstream):
        raise VersionError("dpkg", text, "upstream version must start with a digit")
    if ":" in upstream and epoch == 0 and ":" not in text:
        raise VersionError("dpkg", text, "colon without an epoch")
    return epoch, upstream, revision


SCHEME = Scheme("dpkg", parse)
