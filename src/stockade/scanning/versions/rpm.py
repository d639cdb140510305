"""RPM versions: ``[epoch:]version[-release]`` compared with rpmvercmp.

Each of version and release is split into alphabetic and numeric segments (other characters only
separate). Numeric segments sort after alphabetic ones; ``~`` sorts before everything, even the end
of the string; ``^`` sorts after the end but before any further segment. Each token gets a rank so
a plain tuple comparison gives rpmvercmp's result.
"""

from __future__ import annotations

import re

from stockade.scanning.versions.interface import Scheme, VersionError

_TILDE, _END, _CARET, _ALPHA, _NUM = 0, 1, 2, 3, 4
_TOKEN = re.compile(r"~|\^|[0-9]+|[A-Za-z]+")
_ALLOWED = re.compile(r"[A-Za-z0-9._+~^]*\Z")


def _segments(s: str) -> tuple[tuple[int, object], ...]:
    out: list[tuple[int, object]] = []
    for tok in _TOKEN.findall(s):
        if tok == "~":
            out.append((_TILDE, 0))
        elif tok == "^":
            out.append((_CARET, 0))
        elif tok[0].isdigit():
            out.append((_NUM, int(tok)))
        else:
            out.append((_ALPHA, tok))
    out.append((_END, 0))
    return tuple(out)


def parse(text: str) -> tuple[object, ...]:
    v = text.strip()
    epoch = 0
    if ":" in v:
        head, v = v.split(":", 1)
        if not head.isdigit():
            raise VersionError("rpm", text, "epoch is not a number")
        epoch = int(head)
    version, _, release = v.partition("-")
    if not version or not _ALLOWED.match(version) or not _ALLOWED.match(release):
        raise VersionError("rpm", text, "expected [epoch:]version[-release]")
    return (epoch, _segments(version), _segments(release))


SCHEME = Scheme("rpm", parse)
