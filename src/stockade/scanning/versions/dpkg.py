"""Debian package versions: ``[epoch:]upstream[-revision]`` compared as dpkg does.

Within upstream and revision, dpkg alternates non-digit runs (compared character by character
with ``~`` before the end of the run, letters before other characters) and digit runs (compared
as numbers). Each non-digit run becomes a tuple of weights ending in the end-of-run weight 0, so
plain tuple comparison reproduces dpkg's order; a final 0-weight run stands for "nothing left".
"""

from __future__ import annotations

import re

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


def _part_key(s: str) -> tuple[object, ...]:
    out: list[object] = []
    i, n = 0, len(s)
    while i < n:
        j = i
        while j < n and not s[j].isdigit():
            j += 1
        out.append(tuple(_weight(c) for c in s[i:j]) + _END)
        i = j
        while j < n and s[j].isdigit():
            j += 1
        out.append(int(s[i:j]) if j > i else 0)
        i = j
    if not out:  # an empty part equals "0" ("1.0" == "1.0-0")
        out = [_END, 0]
    out.append(_END)
    return tuple(out)


def parse(text: str) -> tuple[object, ...]:
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
    return (epoch, _part_key(upstream), _part_key(revision))


SCHEME = Scheme("dpkg", parse)
