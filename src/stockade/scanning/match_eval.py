"""One advisory row as the matcher sees it, and OSV range evaluation.

A row's range events are stored in evaluation order (see ``advisories.store``); parsing a row
turns its event versions into sort keys once. Everything else in the row is decoded only for the
rows that match.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any

from stockade.scanning.advisories.model import unbounded_event
from stockade.scanning.advisories.store import LookupRow


@dataclass(frozen=True, slots=True)
class Entry:
    """One affected row: its range events with parsed version keys; the rest of the row is
    decoded only for the rows that match (most rows of a package do not)."""

    row: LookupRow
    ranges: tuple[tuple[tuple[str, Any, str], ...], ...]  # (kind, key or None for "0", text)
    versions: frozenset[str]

    @property
    def vuln_id(self) -> str:
        return self.row[7]

    @property
    def data_source(self) -> str:
        return self.row[8]

    @property
    def aliases(self) -> tuple[str, ...]:
        return json_strings(self.row[9])

    @property
    def summary(self) -> str:
        return self.row[10] or ""

    @property
    def fix_state(self) -> str:
        return self.row[4]

    @property
    def distro_severity(self) -> str | None:
        return self.row[6]

    @property
    def record_severity(self) -> str | None:
        return self.row[11]

    @property
    def cvss_vector(self) -> str | None:
        return self.row[12]

    @property
    def cvss_score(self) -> float | None:
        return self.row[13]

    @property
    def refs(self) -> tuple[str, ...]:
        return json_strings(self.row[14])

    @property
    def upstream(self) -> tuple[str, ...]:
        return json_strings(self.row[15])


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    fixed: str | None  # the fix of the range the installed version falls in
    via: str | None = None  # the compatible release matched instead (``redhat:9`` for Rocky 9)


_NO_VERSIONS: frozenset[str] = frozenset()
Ranges = tuple[tuple[tuple[str, Any, str], ...], ...]


_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed: a class


def load_json(text: str) -> Any:
    """``json.loads`` for the JSON the store wrote, without its Python-level wrappers (a third of
    the decoding time on short texts); anything else goes through ``json.loads`` itself."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


def json_strings(text: str) -> tuple[str, ...]:
    """A stored JSON list of strings (most are empty, or one plain id such as an alias: no JSON
    parse for those)."""
    if text == "[]":
        return ()
    if len(text) > 3 and text.startswith('["') and text.endswith('"]'):
        inner = text[2:-2]  # one string without quotes, escapes or control characters
        if '"' not in inner and "\\" not in inner and inner.isprintable():
            return (inner,)
    return tuple(load_json(text))


def versions_list(text: str) -> frozenset[str]:
    """A row's stored list of explicitly affected versions."""
    return _NO_VERSIONS if text == "[]" else frozenset(load_json(text))


def parse_ranges(text: str, key: Callable[[str], Any]) -> Ranges:
    """A row's stored ranges with each event's version parsed into its sort key."""
    return tuple(
        [
            tuple([(kind, None if unbounded_event(kind, v) else key(v), v) for kind, v in events])
            for _type, events in load_json(text)
        ]
    )


def parse_entry(
    row: LookupRow, key: Callable[[str], Any], memo: dict[str, Ranges] | None = None
) -> Entry:
    """Parse one row's ranges; events are stored in evaluation order (see store._sorted_events).
    ``memo`` (ranges text -> parsed, for one version scheme) parses the ranges that several rows
    share once: a distribution fix closes many CVEs of a package at the same version."""
    text = row[2]
    if memo is None:
        ranges = parse_ranges(text, key)
    else:
        ranges = memo.get(text)  # type: ignore[assignment]
        if ranges is None:
            ranges = memo[text] = parse_ranges(text, key)
    return Entry(row, ranges, versions_list(row[3]))


AFFECTED_NO_FIX = ""  # what ``range_fix`` returns for a version affected without a known fix


def range_fix(key: Any, ranges: Ranges) -> str | None:
    """Whether the installed version's key falls in one of the ranges: None when it does not,
    else the fix of the interval it falls in (``AFFECTED_NO_FIX`` when that interval has none).

    OSV's evaluation (schema, "Evaluation"): a range applies only below one of its ``limit``
    events (``*`` is infinity; no limit means ``*``), and then every ``introduced``/``fixed``
    event at or below the version and every ``last_affected`` below it is applied in version
    order, the last one deciding. Events are stored in that order (document order at one
    version, see ``store._sort_events``), so the walk stops at the first event above the
    version; if that is a ``fixed``, it is the interval's fix."""
    for events in ranges:
        limits = [k for kind, k, _v in events if kind == "limit"]
        if limits and not any(k is None or key < k for k in limits):
            continue
        affected = False
        fix = AFFECTED_NO_FIX
        for kind, k, vtext in events:
            if kind == "introduced":
                if k is None or k <= key:
                    affected = True
                    continue
            elif kind == "fixed":
                if k <= key:
                    affected = False
                    continue
                if affected:
                    fix = vtext
            elif kind == "last_affected":
                if k < key:
                    affected = False
                    continue
                if k == key:
                    continue  # applies only above it; later events at this version still do
            else:  # "limit": decided above
                continue
            break
        if affected:
            return fix
    return None


StoredRanges = list[list[Any]]  # a row's ranges as decoded: [[type, [[kind, version], ...]], ...]


def stored_ranges(text: str, key: Callable[[str], Any]) -> StoredRanges:
    """A row's ranges decoded, every event version checked (and its key cached) by the scheme;
    raises :class:`VersionError` for a version the scheme rejects."""
    ranges: StoredRanges = load_json(text)
    for _type, events in ranges:
        for kind, v in events:
            if not unbounded_event(kind, v):
                key(v)
    return ranges


def stored_range_fix(key: Any, ranges: StoredRanges, key_of: Callable[[str], Any]) -> str | None:
    """``range_fix`` on decoded stored ranges, each event's key taken from ``key_of`` (the
    scheme's cache) when the walk reaches it: no parsed copy of the ranges is built."""
    for _type, events in ranges:
        limits = [v for kind, v in events if kind == "limit"]
        if limits and not any("*" in v or key < key_of(v) for v in limits):
            continue
        affected = False
        fix = AFFECTED_NO_FIX
        for kind, v in events:
            if kind == "introduced":
                if v == "0" or key_of(v) <= key:
                    affected = True
                    continue
            elif kind == "fixed":
                if key_of(v) <= key:
                    affected = False
                    continue
                if affected:
                    fix = v
            elif kind == "last_affected":
                k = key_of(v)
                if k < key:
                    affected = False
                    continue
                if k == key:
                    continue
            else:
                continue
            break
        if affected:
            return fix
    return None


def affected_by(key: Any, text: str, entry: Entry) -> Hit | None:
    """Whether the installed version (key, text) is affected by the entry, and its fix."""
    fix = range_fix(key, entry.ranges)
    if fix is not None:
        return Hit(entry, fix or None)
    # An explicit versions list names affected versions without saying where the fix is.
    return Hit(entry, None) if text in entry.versions else None
