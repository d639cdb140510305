"""What every version scheme provides, and the one error they raise.

A scheme turns version text into an immutable *sort key*: two versions compare as their keys do.
Keys are cached per scheme, so matching thousands of packages against the same fixed versions
parses each distinct string once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from stockade.model.errors import AdvisoryError


class VersionError(AdvisoryError):
    """Version text that a scheme cannot parse. ``text`` is the bad input, ``scheme`` the scheme."""

    def __init__(self, scheme: str, text: str, reason: str) -> None:
        super().__init__(f"invalid {scheme} version {text!r}: {reason}")
        self.scheme = scheme
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Scheme:
    """One versioning scheme: a name and a parser from text to a sort key."""

    name: str
    parse: Callable[[str], Any]
    # The sort key of a text (cached); raises :class:`VersionError`. The cache itself, not a
    # method around it: the matcher calls it for every event version of every row it reads.
    key: Callable[[str], Any] = field(init=False, repr=False, compare=False)
    _cached: Callable[[str], Any] = field(init=False, repr=False, compare=False)  # the same cache

    def __post_init__(self) -> None:
        cached = lru_cache(maxsize=200_000)(self.parse)
        object.__setattr__(self, "key", cached)
        object.__setattr__(self, "_cached", cached)

    def compare(self, a: str, b: str) -> int:
        """-1, 0 or 1 as ``a`` sorts before, with or after ``b``."""
        ka, kb = self.key(a), self.key(b)
        return int(ka > kb) - int(ka < kb)

    def valid(self, text: str) -> bool:
        try:
            self.key(text)
        except VersionError:
            return False
        return True
