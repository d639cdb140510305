"""The normalized advisory record every importer produces and the store keeps.

One :class:`Advisory` is one upstream record (an OSV entry, one CVE of one Debian source package,
one Alpine secfix id). Its :class:`Affected` entries are keyed by a normalized ecosystem
(``debian:12``, ``alpine:3.19``, ``pypi``, ``maven``...) and a normalized package name; their
ranges are OSV-style events so one evaluator serves every source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FixState(StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not-fixed"
    WONT_FIX = "wont-fix"
    UNKNOWN = "unknown"  # the distribution has not decided (Debian "undetermined")


class EventKind(StrEnum):
    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


def unbounded_event(kind: str, version: str) -> bool:
    """An event whose version has no key: ``introduced "0"`` (before every version) and a
    ``limit`` containing ``*`` (OSV: infinity)."""
    return (kind == "introduced" and version == "0") or (kind == "limit" and "*" in version)


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRange:
    """Events in upstream order; ``introduced`` "0" means "from the first version"."""

    type: str  # "ECOSYSTEM" or "SEMVER"
    events: tuple[tuple[EventKind, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Affected:
    ecosystem: str  # normalized: "debian:12", "alpine:3.19", "pypi", "npm", "maven", "go"
    package: str  # normalized name: source package for distributions, PEP 503 for PyPI
    ranges: tuple[VersionRange, ...] = ()
    versions: tuple[str, ...] = ()  # explicit affected versions
    fix_state: FixState = FixState.NOT_FIXED
    fixed_version: str | None = None
    severity: str | None = None  # the distribution's own rating (urgency, priority), if any


@dataclass(frozen=True, slots=True, kw_only=True)
class Cvss:
    version: str  # "2.0", "3.0", "3.1", "4.0"
    vector: str
    score: float | None  # the base score computed from the vector; None when not computed


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisory:
    id: str
    source: str  # data source: "osv", "debian-tracker", "alpine-secdb"
    aliases: tuple[str, ...] = ()
    # Ids this record bundles without being the same issue (a DSA or USN fixing several CVEs).
    upstream: tuple[str, ...] = ()
    summary: str = ""
    published: str | None = None  # ISO 8601 as published
    modified: str | None = None
    withdrawn: str | None = None
    severity: str | None = None  # a record-level rating (GHSA "HIGH", ...)
    cvss: tuple[Cvss, ...] = ()
    references: tuple[str, ...] = ()
    affected: tuple[Affected, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """A record that was skipped (or partly skipped), and why."""

    where: str  # "file.json", "all.zip:GHSA-xxxx.json", "file.json#openssl/CVE-2024-1"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True, kw_only=True)
class ImportBatch:
    """What one importer read from one source, ready to be stored in one transaction."""

    source: str  # the name the user gave (path or URL); re-importing it replaces its records
    kind: str  # "osv", "debian-tracker", "alpine-secdb", or "mixed" for a folder of several
    advisories: list[Advisory] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
