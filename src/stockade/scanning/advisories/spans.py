"""An affected row's ranges as intervals of stored byte keys (the ``adv_spans`` table).

The matcher's range walk (``match_eval.stored_range_fix``) compares the installed version with
each event version of a range, in order. Between two consecutive event versions, and at each of
them, every comparison comes out the same, so the walk's answer (not affected, or affected with
the fix of its interval) is constant there. The spans are those answers, computed here once per
row at import with the walk itself run on each region, consecutive regions with the same answer
joined: the database then compares the installed version's key with the bounds and returns only
the rows that match. A row's explicit versions list becomes spans matched by text.

A row whose versions the scheme rejects, a range of more than ``MAX_EVENTS`` events, or whose scheme's keys are not stored as bytes (RubyGems,
a Maven version with qualifiers), gets one *unkeyed* span (``seq`` -1, no bounds) that matches every version: the
matcher evaluates that row in Python, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from stockade.scanning.advisories.model import unbounded_event
from stockade.scanning.versions import SCHEMES, VersionError, scheme_for
from stockade.scanning.versions.sortable import SORTABLE_SCHEMES, NotSortable, sortable_key

UNKEYED = -1  # the seq of a row's only span when the matcher must evaluate it in Python
# The seq of the spans of an explicit versions list: after every range's (a range's answer wins).
VERSIONS_SEQ = 1 << 20


class Span(NamedTuple):
    seq: int  # the range's position in the row (the first matching range gives the fix)
    lo: bytes | None  # lower bound key (None: unbounded)
    lo_in: bool  # the lower bound itself is inside
    hi: bytes | None  # upper bound key (None: unbounded)
    hi_in: bool
    exact: str | None  # a version of the explicit list (matched by text; no bounds)
    fix: str | None  # the fix of the interval (None: affected without a known fix)


UNKEYED_SPAN = Span(UNKEYED, None, False, None, False, None, None)
# The walk runs once per region (twice the distinct versions, plus one): a range with more events
# than this is left to the walk in Python at match time, so a hostile record cannot make the
# import quadratic.
MAX_EVENTS = 64


def row_spans(ecosystem: str, ranges: Sequence[Any], versions: Sequence[str]) -> list[Span]:
    """The spans of one affected row (``ranges`` as stored: ``[[type, [[kind, version], ...]],
    ...]`` in evaluation order)."""
    scheme = scheme_for(ecosystem)
    if scheme is None or scheme.name not in SORTABLE_SCHEMES:
        return [UNKEYED_SPAN]  # the scheme's keys are not stored as bytes
    out: list[Span] = []
    try:
        for seq, (_type, events) in enumerate(ranges):
            if len(events) > MAX_EVENTS:
                return [UNKEYED_SPAN]
            keys = [
                None if unbounded_event(kind, v) else _event_key(scheme.name, v)
                for kind, v in events
            ]
            out += _range_spans(seq, events, keys)
    except (VersionError, NotSortable):
        return [UNKEYED_SPAN]
    out += [Span(VERSIONS_SEQ, None, False, None, False, v, None) for v in dict.fromkeys(versions)]
    return out


@lru_cache(maxsize=65_536)
def _event_key(scheme: str, text: str) -> bytes | None:
    """The stored key of an event version (an import meets the same fix versions again and
    again); raises as ``sortable_key`` does (exceptions are not cached)."""
    found = SCHEMES[scheme]
    return sortable_key(found, text)


def _range_spans(seq: int, events: Sequence[Any], keys: list[bytes | None]) -> list[Span]:
    points = sorted({k for k in keys if k is not None})
    # Region r: even r = 2i is the open interval between points[i-1] and points[i] (unbounded
    # at the ends); odd r = 2i + 1 is points[i] itself. An event at points[i] is region 2i + 1.
    where = {k: 2 * i + 1 for i, k in enumerate(points)}
    regions = [None if k is None else where[k] for k in keys]
    # The range applies below its highest limit (none, or a "*" one: everywhere).
    limits = [e for (kind, _v), e in zip(events, regions, strict=True) if kind == "limit"]
    cap = None if not limits or None in limits else max(e for e in limits if e is not None)
    answers = [
        None if cap is not None and r >= cap else _walk(r, events, regions)
        for r in range(2 * len(points) + 1)
    ]
    spans = []
    start = 0
    for r in range(1, len(answers) + 1):
        if r < len(answers) and answers[r] == answers[start]:
            continue
        answer = answers[start]
        if answer is not None:
            lo = None if start == 0 else points[(start - 1) // 2]
            hi = None if r == len(answers) else points[(r - 1) // 2]
            # A run starting at a point includes it; one ending before region r excludes r's
            # point when r is a point (odd), else it ends inside the point before r (included).
            spans.append(Span(seq, lo, start % 2 == 1, hi, r % 2 == 0, None, answer or None))
        start = r
    return spans


def _walk(r: int, events: Sequence[Any], regions: list[int | None]) -> str | None:
    """``stored_range_fix`` for an installed version in region ``r`` (an event at region e is
    above it when e > r), limits left out (see ``_range_spans``): None when not affected, else
    the fix ("" when none)."""
    affected = False
    fix = ""
    for (kind, v), e in zip(events, regions, strict=True):
        if kind == "introduced":
            if e is None or e <= r:
                affected = True
                continue
        elif kind == "fixed":
            assert e is not None
            if e <= r:
                affected = False
                continue
            if affected:
                fix = v
        elif kind == "last_affected":
            assert e is not None
            if e < r:
                affected = False
                continue
            if e == r:
                continue
        else:  # "limit"
            continue
        break
    return fix if affected else None
