"""The stored spans of a row (``advisories.spans``) give the range walk's answer for every
installed version: generated ranges of every event kind, checked at, between and around their
event versions."""

from __future__ import annotations

import random

import pytest

from stockade.scanning.advisories.spans import MAX_EVENTS, UNKEYED_SPAN, Span, row_spans
from stockade.scanning.advisories.store import _sort_events
from stockade.scanning.match_eval import stored_range_fix, versions_list
from stockade.scanning.versions import scheme_for
from stockade.scanning.versions.sortable import sortable_key


def span_answer(spans: list[Span], version: str, key: bytes) -> tuple[bool, str | None]:
    """What the database's span query decides for one row: (matched, fix)."""
    found = [
        s
        for s in spans
        if (
            s.exact == version
            if s.exact is not None
            else (s.lo is None or s.lo < key or (s.lo_in and s.lo == key))
            and (s.hi is None or key < s.hi or (s.hi_in and key == s.hi))
        )
    ]
    if not found:
        return False, None
    return True, min(found, key=lambda s: s.seq).fix


def walk_answer(ranges, versions, version: str, scheme) -> tuple[bool, str | None]:
    """What the matcher's Python evaluation decides for one row."""
    fix = stored_range_fix(scheme.key(version), ranges, scheme.key)
    if fix is None:
        return (True, None) if version in versions_list_of(versions) else (False, None)
    return True, fix or None


def versions_list_of(versions: list[str]) -> frozenset[str]:
    import json

    return versions_list(json.dumps(versions))


KINDS = ("introduced", "fixed", "last_affected", "limit")


@pytest.mark.parametrize(
    ("ecosystem", "pool"),
    [
        ("debian:12", ["1.0-1", "1.0-1+deb12u1", "1.2-1", "1:0.9", "2.0~rc1-1", "2.0-1", "3.0"]),
        ("pypi", ["0.9", "1.0", "1.0.0", "1.0rc1", "1.0.post1", "1.1", "2.0.dev1", "2.0"]),
        ("npm", ["0.1.0", "1.0.0", "1.0.0-rc.1", "1.2.3", "1.10.0", "2.0.0", "2.0.0-alpha"]),
        ("go", ["v0.1.0", "v1.0.0", "v1.2.0", "v1.2.0-pre", "v2.0.0"]),
        ("alpine:3.19", ["1.0-r0", "1.0-r1", "1.0_rc1-r0", "1.2-r0", "2.0-r3"]),
        ("maven", ["0.9", "1", "1.0.1", "1.0.1.Final", "1.2", "1.10", "2.0.0.GA", "3"]),
    ],
)
def test_spans_give_the_walks_answer(ecosystem: str, pool: list[str]) -> None:
    scheme = scheme_for(ecosystem)
    assert scheme is not None
    r = random.Random(19)
    probes = [
        *pool,
        "0.0.1" if ecosystem != "go" else "v0.0.1",
        "99.0" if ecosystem != "go" else "v99.0.0",
    ]
    probes = [p for p in probes if scheme.valid(p)]
    for _ in range(1500):
        ranges = []
        for _range in range(r.choice((1, 1, 2, 3))):
            events = [[r.choice(KINDS), r.choice(pool)] for _ in range(r.randint(0, 5))]
            if r.random() < 0.6:
                events.insert(0, ["introduced", "0"])
            if r.random() < 0.1:
                events.append(["limit", "*"])
            ranges.append(["ECOSYSTEM", _sort_events(ecosystem, events)])  # the stored order
        versions = r.sample(pool, r.choice((0, 0, 1, 2)))
        spans = row_spans(ecosystem, ranges, versions)
        assert UNKEYED_SPAN not in spans
        for v in probes:
            assert span_answer(spans, v, sortable_key(scheme, v) or b"") == walk_answer(
                ranges, versions, v, scheme
            ), (ranges, versions, v, spans)


def test_rows_the_store_cannot_key_are_left_to_python() -> None:
    qualified = [["ECOSYSTEM", [["introduced", "0"], ["fixed", "1.0-rc1"]]]]
    assert row_spans("maven", qualified, []) == [UNKEYED_SPAN]
    assert row_spans("rubygems", qualified, []) == [UNKEYED_SPAN]
    bad = [["ECOSYSTEM", [["introduced", "0"], ["fixed", "not a version!"]]]]
    assert row_spans("pypi", bad, []) == [UNKEYED_SPAN]
    assert row_spans("no-such-ecosystem", bad, []) == [UNKEYED_SPAN]


def test_a_range_of_very_many_events_is_left_to_python() -> None:
    """The spans cost one walk per region: a hostile record with thousands of events is walked
    at match time instead of making the import quadratic."""
    import time

    events = [["introduced", "0"]]
    for i in range(5000):
        events += [["fixed", f"{i}.1"], ["introduced", f"{i}.2"]]
    started = time.process_time()
    assert row_spans("pypi", [["ECOSYSTEM", events]], []) == [UNKEYED_SPAN]
    assert time.process_time() - started < 1.0
    few = [["introduced", "0"]] + [["fixed", f"{i}.1"] for i in range(MAX_EVENTS - 1)]
    assert UNKEYED_SPAN not in row_spans("pypi", [["ECOSYSTEM", few]], [])
