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
            tuple(
                [
                    (kind, None if v == "0" and kind == "introduced" else key(v), v)
                    for kind, v in events
                ]
            )
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
    else the fix of the interval it falls in (``AFFECTED_NO_FIX`` when that interval has none)."""
    for events in ranges:
        # Events are in version order: apply those at or below the installed version; the first
        # one above it ends the walk (and, if it is a "fixed", is this interval's fix).
        affected = False
        fix = AFFECTED_NO_FIX
        for kind, k, vtext in events:
            if kind == "introduced":
                if k is not None and k > key:
                    break
                affected = True
            elif kind == "last_affected":
                if k >= key:
                    break
                affected = False
            elif k > key:  # "fixed" or "limit"
                if affected and kind == "fixed":
                    fix = vtext
                break
            else:
                affected = False
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
            if v != "0" or kind != "introduced":
                key(v)
    return ranges


def stored_range_fix(key: Any, ranges: StoredRanges, key_of: Callable[[str], Any]) -> str | None:
    """``range_fix`` on decoded stored ranges, each event's key taken from ``key_of`` (the
    scheme's cache) when the walk reaches it: no parsed copy of the ranges is built."""
    for _type, events in ranges:
        affected = False
        fix = AFFECTED_NO_FIX
        for kind, v in events:
            if kind == "introduced":
                if v != "0" and key_of(v) > key:
                    break
                affected = True
            elif kind == "last_affected":
                if key_of(v) >= key:
                    break
                affected = False
            elif key_of(v) > key:  # "fixed" or "limit"
                if affected and kind == "fixed":
                    fix = v
                break
            else:
                affected = False
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
