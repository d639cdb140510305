"""Matching an inventory against the advisory store.

OS packages are looked up by (distribution release, source package), as distributions publish
advisories (``debian:12`` + ``openssl``, from the Debian tracker and OSV ``Debian:12`` records;
``alpine:3.19`` + origin). Language packages by ecosystem and normalized name. All the rows for
the inventory's keys are loaded in a few bulk queries and each row's ranges are parsed once; each
distinct version string is parsed once per scheme (cached keys).

Records that name each other (an id in another's aliases) are merged into one finding per
vulnerability per package, carrying every id (CVE, GHSA, PYSEC, DSA...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stockade.model import Finding, Pillar, ResourceRef, Severity
from stockade.model.errors import UsageError
from stockade.scanning.advisories import ecosystems
from stockade.scanning.advisories.store import lookup_rows
from stockade.scanning.interface import Inventory, Package, VulnerabilityDetails
from stockade.scanning.versions import Scheme, VersionError, scheme_for
from stockade.store.db import Store

_LANGUAGE_TYPES = {
    "python": "pypi",
    "npm": "npm",
    "go-module": "go",
    "java-archive": "maven",
    "rust-crate": "crates.io",
    "gem": "rubygems",
}
_OS_TYPES = ("deb", "apk", "rpm")
_DISTRO_ECOSYSTEMS = (
    "debian",
    "ubuntu",
    "alpine",
    "redhat",
    "rocky",
    "almalinux",
    "wolfi",
    "chainguard",
)
_FIX_RANK = {"fixed": 3, "wont-fix": 2, "not-fixed": 1, "unknown": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What one package is looked up and compared as."""

    package: Package
    ecosystem: str
    name: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchReport:
    findings: tuple[Finding, ...]
    skipped: tuple[str, ...]  # packages that could not be checked, with the reason
    checked: int  # packages looked up


@dataclass(frozen=True, slots=True)
class _Entry:
    """One affected row, parsed once: sorted range events with version keys."""

    vuln_id: str
    aliases: tuple[str, ...]
    data_source: str
    summary: str
    record_severity: str | None
    cvss_vector: str | None
    cvss_score: float | None
    refs: tuple[str, ...]
    ranges: tuple[tuple[tuple[str, Any, str], ...], ...]  # (kind, key or None for "0", text)
    versions: frozenset[str]
    fix_state: str
    distro_severity: str | None


@dataclass(frozen=True, slots=True)
class _Hit:
    entry: _Entry
    fixed: str | None  # the fix of the range the installed version falls in


def target_for(pkg: Package, distro_eco: str | None) -> Target | str:
    """The lookup target of a package, or the reason it cannot be checked."""
    if pkg.type in _OS_TYPES:
        if distro_eco is None:
            return f"{pkg.name} {pkg.version}: unknown distribution, OS package not checked"
        name = pkg.source_name or pkg.name
        version = pkg.version if pkg.type == "apk" else (pkg.source_version or pkg.version)
        return Target(package=pkg, ecosystem=distro_eco, name=name, version=version)
    eco = _LANGUAGE_TYPES.get(pkg.type)
    if eco is None:
        return f"{pkg.name} {pkg.version}: package type {pkg.type!r} has no advisory ecosystem"
    name = pkg.name
    if eco == "maven" and ":" not in name:
        group = pkg.meta("group") or pkg.meta("groupId")
        if not group:
            return f"{pkg.name} {pkg.version}: Maven package without a groupId"
        name = f"{group}:{pkg.name}"
    return Target(
        package=pkg, ecosystem=eco, name=ecosystems.package_name(eco, name), version=pkg.version
    )


def _parse_entry(row: Sequence[Any], scheme: Scheme) -> _Entry:
    (
        _eco,
        _pkg,
        ranges,
        versions,
        fix_state,
        _fixed,
        a_sev,
        vid,
        src,
        aliases,
        summary,
        v_sev,
        vec,
        score,
        refs,
    ) = row
    parsed = []
    for _type, events in json.loads(ranges):
        evs = [
            (kind, None if (kind == "introduced" and v == "0") else scheme.key(v), v)
            for kind, v in events
        ]
        # OSV: evaluate events in version order; "introduced 0" first; at equal versions
        # "introduced" before the others.
        evs.sort(key=lambda e: (0,) if e[1] is None else (1, e[1], e[0] != "introduced"))
        parsed.append(tuple(evs))
    return _Entry(
        vuln_id=vid,
        aliases=tuple(json.loads(aliases)),
        data_source=src,
        summary=summary,
        record_severity=v_sev,
        cvss_vector=vec,
        cvss_score=score,
        refs=tuple(json.loads(refs)),
        ranges=tuple(parsed),
        versions=frozenset(json.loads(versions)),
        fix_state=fix_state,
        distro_severity=a_sev,
    )


def affected_by(key: Any, text: str, entry: _Entry) -> _Hit | None:
    """Whether the installed version (key, text) is affected by the entry, and its fix."""
    for events in entry.ranges:
        affected = False
        fix: str | None = None
        for kind, k, vtext in events:
            if kind == "introduced":
                if k is None or k <= key:
                    affected, fix = True, None
            elif kind == "fixed":
                if k <= key:
                    affected = False
                elif affected and fix is None:
                    fix = vtext
            elif kind == "last_affected":
                if k < key:
                    affected = False
            elif kind == "limit" and k <= key:
                affected = False
        if affected:
            return _Hit(entry, fix)
    # An explicit versions list names affected versions without saying where the fix is.
    return _Hit(entry, None) if text in entry.versions else None


class Matcher:
    """Loads the advisories an inventory needs, once, and turns packages into findings."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, inventory: Inventory) -> MatchReport:
        distro_eco = None
        if inventory.distro is not None:
            d = inventory.distro
            distro_eco = ecosystems.from_distro(d.id, d.version_id, d.version_codename)
        targets: list[Target] = []
        skipped: list[str] = []
        for pkg in inventory.packages:
            t = target_for(pkg, distro_eco)
            if isinstance(t, str):
                skipped.append(t)
            elif scheme_for(t.ecosystem) is None:
                skipped.append(f"{pkg.name} {pkg.version}: no version scheme for {t.ecosystem}")
            else:
                targets.append(t)
        entries = self._load({(t.ecosystem, t.name) for t in targets}, skipped)
        findings: list[Finding] = []
        resource = _resource(inventory)
        for t in targets:
            cands = entries.get((t.ecosystem, t.name))
            if not cands:
                continue
            scheme = scheme_for(t.ecosystem)
            assert scheme is not None
            try:
                key = scheme.key(t.version)
            except VersionError as exc:
                skipped.append(f"{t.package.name}: {exc}")
                continue
            hits = [h for e in cands if (h := affected_by(key, t.version, e)) is not None]
            if hits:
                findings.extend(_findings(t, hits, scheme, resource))
        return MatchReport(findings=tuple(findings), skipped=tuple(skipped), checked=len(targets))

    def _load(
        self, keys: set[tuple[str, str]], skipped: list[str]
    ) -> dict[tuple[str, str], list[_Entry]]:
        with self.store.connect() as conn:
            rows = lookup_rows(conn, keys)
        out: dict[tuple[str, str], list[_Entry]] = {}
        for row in rows:
            scheme = scheme_for(row[0])
            if scheme is None:
                continue
            try:
                entry = _parse_entry(row, scheme)
            except VersionError as exc:  # only reachable for data stored by an older importer
                skipped.append(f"advisory {row[7]} for {row[1]}: {exc}")
                continue
            out.setdefault((row[0], row[1]), []).append(entry)
        return out


def match(inventory: Inventory, store: Store) -> list[Finding]:
    """The vulnerability findings for an inventory (see :class:`Matcher` for skipped packages)."""
    return list(Matcher(store).run(inventory).findings)


def _resource(inv: Inventory) -> ResourceRef:
    digest = inv.image.manifest_digest if inv.image else None
    return ResourceRef(kind="image", name=inv.source, digest=digest)


def _groups(hits: list[_Hit]) -> list[list[_Hit]]:
    """Union hits whose id sets overlap (a GHSA aliasing a CVE, a PYSEC aliasing both)."""
    parent = list(range(len(hits)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, h in enumerate(hits):
        for ident in (h.entry.vuln_id, *h.entry.aliases):
            j = owner.setdefault(ident, i)
            if j != i:
                parent[find(i)] = find(j)
    grouped: dict[int, list[_Hit]] = {}
    for i, h in enumerate(hits):
        grouped.setdefault(find(i), []).append(h)
    return list(grouped.values())


def _primary(ids: set[str]) -> str:
    for prefix in ("CVE-", "GHSA-"):
        pick = sorted(i for i in ids if i.startswith(prefix))
        if pick:
            return pick[0]
    return sorted(ids)[0]


def _rating(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        sev = Severity.parse(text)
    except UsageError:
        return None
    return None if sev is Severity.UNKNOWN else sev


def _findings(t: Target, hits: list[_Hit], scheme: Scheme, resource: ResourceRef) -> list[Finding]:
    out = []
    is_distro = t.ecosystem.split(":", 1)[0] in _DISTRO_ECOSYSTEMS
    for group in _groups(hits):
        ids = {i for h in group for i in (h.entry.vuln_id, *h.entry.aliases)}
        primary = _primary(ids)
        fixes = [h.fixed for h in group if h.fixed]
        states = [("fixed" if h.fixed else h.entry.fix_state) for h in group]
        state = max(states, key=lambda s: _FIX_RANK.get(s, 0))
        if state == "fixed" and not fixes:
            state = "not-fixed"  # a fixed range the installed version is not below
        scored = [h.entry for h in group if h.entry.cvss_score is not None]
        best = max(scored, key=lambda e: e.cvss_score or 0.0) if scored else None
        severity = None
        if is_distro:
            severity = next(
                (
                    s
                    for h in group
                    if (s := _rating(h.entry.distro_severity or h.entry.record_severity))
                ),
                None,
            )
        if severity is None and best is not None:
            severity = Severity.from_cvss(best.cvss_score or 0.0)
        if severity is None:
            severity = next(
                (
                    s
                    for h in group
                    if (s := _rating(h.entry.distro_severity or h.entry.record_severity))
                ),
                Severity.UNKNOWN,
            )
        summary = next((h.entry.summary for h in group if h.entry.summary), "")
        urls = tuple(dict.fromkeys(u for h in group for u in h.entry.refs))[:10]
        pkg = t.package
        out.append(
            Finding(
                id=primary,
                pillar=Pillar.SCANNING,
                title=summary.splitlines()[0][:200] if summary else primary,
                severity=severity,
                resource=resource,
                details=VulnerabilityDetails(
                    package=pkg.name,
                    package_type=pkg.type,
                    installed_version=pkg.version,
                    fixed_version=max(fixes, key=scheme.key) if fixes else None,
                    fix_state=state,
                    aliases=tuple(sorted(ids - {primary})),
                    cvss_score=best.cvss_score if best else None,
                    cvss_vector=best.cvss_vector if best else None,
                    purl=pkg.purl,
                    locations=pkg.locations,
                    layer=pkg.layer,
                    data_source=", ".join(sorted({_source_label(h.entry, t) for h in group})),
                    urls=urls,
                ),
            )
        )
    return out


def _source_label(entry: _Entry, t: Target) -> str:
    return f"osv:{t.ecosystem}" if entry.data_source == "osv" else entry.data_source
