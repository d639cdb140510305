"""RubyGems versions, compared as ``Gem::Version#<=>`` does.

A version is dot-separated segments; runs of digits and of letters are separate segments
(``1.0.0.pre1`` is ``1 0 0 pre 1``) and a ``-`` reads as ``.pre.`` (``1.0-x`` is a prerelease).
Trailing zeros are dropped from the numeric part and from the part after the first letter, so
``1.0 == 1``. Segments compare pairwise, a missing one counting as 0; a letter segment sorts
before any number, so every version with letters (a prerelease) sorts before its release.
"""

from __future__ import annotations

import re
from functools import total_ordering

from stockade.scanning.versions.interface import Scheme, VersionError

_VALID = re.compile(r"\A\s*[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\s*\Z")
_SEGMENT = re.compile(r"[0-9]+|[a-zA-Z]+")


def _strip_zeros(segments: list[int | str]) -> list[int | str]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


@total_ordering
class GemKey:
    """The canonical segments of one version; ordered as RubyGems orders them."""

    __slots__ = ("segments",)

    def __init__(self, segments: tuple[int | str, ...]) -> None:
        self.segments = segments

    def _cmp(self, other: GemKey) -> int:
        left, right = self.segments, other.segments
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else 0
            b = right[i] if i < len(right) else 0
            if a == b:
                continue
            if isinstance(a, str) != isinstance(b, str):
                return -1 if isinstance(a, str) else 1
            return -1 if a < b else 1  # type: ignore[operator]
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GemKey) and self._cmp(other) == 0

    def __lt__(self, other: GemKey) -> bool:
        return self._cmp(other) < 0

    def __hash__(self) -> int:
        return hash(self.segments)

    def __repr__(self) -> str:
        return f"GemKey{self.segments!r}"


def parse(text: str) -> GemKey:
    if not _VALID.match(text):
        raise VersionError("rubygems", text, "expected dot-separated digits and letters")
    raw: list[int | str] = [
        int(s) if s.isdigit() else s for s in _SEGMENT.findall(text.strip().replace("-", ".pre."))
    ]
    first_letter = next((i for i, s in enumerate(raw) if isinstance(s, str)), len(raw))
    numeric, rest = _strip_zeros(raw[:first_letter]), _strip_zeros(raw[first_letter:])
    return GemKey((*numeric, *rest))


SCHEME = Scheme("rubygems", parse)
