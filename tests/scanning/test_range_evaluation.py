"""OSV range evaluation against a brute-force reference: for random disjoint intervals given in
any order, a version is affected exactly when some interval [introduced, fixed) or
[introduced, last_affected] contains it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.scanning.advisories.model import EventKind, VersionRange
from stockade.scanning.advisories.store import _sorted_events
from stockade.scanning.match_eval import (
    affected_by,
    parse_entry,
    stored_range_fix,
    stored_ranges,
)
from stockade.scanning.versions import SCHEMES

PEP440 = SCHEMES["pep440"]
versions = st.lists(
    st.builds(
        lambda a, b, c: f"{a}.{b}.{c}", st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)
    ),
    min_size=2,
    max_size=12,
    unique=True,
)


def _row(events: list[list[str]]) -> tuple:
    return (
        "pypi",
        "p",
        json.dumps([["ECOSYSTEM", events]]),
        "[]",
        "fixed",
        None,
        None,
        "X-1",
        "osv",
        "[]",
        "",
        None,
        None,
        None,
        "[]",
        "[]",
    )


@settings(max_examples=300, deadline=None)
@given(versions, st.data())
def test_ranges_match_brute_force(vs: list[str], data: st.DataObject) -> None:
    ordered = sorted(vs, key=PEP440.key)
    # Cut the ordered versions into disjoint intervals, each closed by fixed or last_affected.
    cuts = sorted(
        data.draw(st.sets(st.integers(0, len(ordered) - 1), min_size=1, max_size=len(ordered)))
    )
    intervals = []
    for i in range(0, len(cuts) - 1, 2):
        lo, hi = ordered[cuts[i]], ordered[cuts[i + 1]]
        kind = data.draw(st.sampled_from([EventKind.FIXED, EventKind.LAST_AFFECTED]))
        intervals.append((lo, kind, hi))
    open_from = ordered[cuts[-1]] if len(cuts) % 2 else None
    events: list[tuple[EventKind, str]] = []
    for lo, kind, hi in intervals:
        events += [(EventKind.INTRODUCED, lo), (kind, hi)]
    if open_from is not None:
        events.append((EventKind.INTRODUCED, open_from))
    events = data.draw(st.permutations(events))  # upstream order is not guaranteed
    stored = _sorted_events("pypi", VersionRange(type="ECOSYSTEM", events=tuple(events)))
    entry = parse_entry(_row(stored), PEP440.key)

    def expected(v: str) -> tuple[bool, str | None]:
        k = PEP440.key(v)
        for lo, kind, hi in intervals:
            inside = k < PEP440.key(hi) if kind == EventKind.FIXED else k <= PEP440.key(hi)
            if PEP440.key(lo) <= k and inside:
                return True, hi if kind == EventKind.FIXED else None
        return (open_from is not None and PEP440.key(open_from) <= k), None

    decoded = stored_ranges(_row(stored)[2], PEP440.key)
    for v in ordered:
        hit = affected_by(PEP440.key(v), v, entry)
        got = (hit is not None, hit.fixed if hit else None)
        assert got == expected(v), (v, events)
        # The matcher's walk over the decoded row agrees with the parsed one.
        fix = stored_range_fix(PEP440.key(v), decoded, PEP440.key)
        assert (fix is not None, fix or None) == got, (v, events)
