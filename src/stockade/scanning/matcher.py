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

import gc
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

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
    """One affected row: its range events with parsed version keys; the rest of the row is
    decoded only for the rows that match (most rows of a package do not)."""

    row: tuple[Any, ...]  # as returned by lookup_rows
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
        return tuple(json.loads(self.row[9]))

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
        return tuple(json.loads(self.row[14]))

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(json.loads(self.row[15]))


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
        epoch = pkg.meta("epoch")
        if pkg.type == "rpm" and epoch and epoch != "0" and ":" not in version:
            version = f"{epoch}:{version}"  # rpm headers keep the epoch apart
        return Target(package=pkg, ecosystem=distro_eco, name=name, version=version)
    eco = _LANGUAGE_TYPES.get(pkg.type)
    if eco is None:
        return f"{pkg.name} {pkg.version}: package type {pkg.type!r} has no advisory ecosystem"
    name = pkg.name
    if eco == "maven" and ":" not in name:
        group = pkg.meta("maven-group") or pkg.meta("group") or _purl_namespace(pkg.purl, "maven")
        if not group:
            return f"{pkg.name} {pkg.version}: Maven package without a groupId"
        name = f"{group}:{pkg.name}"
    return Target(
        package=pkg, ecosystem=eco, name=ecosystems.package_name(eco, name), version=pkg.version
    )


_NO_VERSIONS: frozenset[str] = frozenset()


def _purl_namespace(purl: str, kind: str) -> str | None:
    """``pkg:maven/org.example/artifact@1.0`` -> ``org.example``."""
    prefix = f"pkg:{kind}/"
    if not purl.startswith(prefix):
        return None
    path = purl[len(prefix) :].split("@", 1)[0].split("?", 1)[0]
    namespace, _, _name = path.rpartition("/")
    return unquote(namespace) or None


def _parse_entry(row: tuple[Any, ...], key: Callable[[str], Any]) -> _Entry:
    """Parse one row's ranges; events are stored in evaluation order (see store._sorted_events)."""
    ranges = tuple(
        tuple(
            (kind, None if (kind == "introduced" and v == "0") else key(v), v) for kind, v in events
        )
        for _type, events in json.loads(row[2])
    )
    versions = row[3]
    return _Entry(
        row, ranges, _NO_VERSIONS if versions == "[]" else frozenset(json.loads(versions))
    )


def affected_by(key: Any, text: str, entry: _Entry) -> _Hit | None:
    """Whether the installed version (key, text) is affected by the entry, and its fix."""
    for events in entry.ranges:
        # Events are in version order: apply those at or below the installed version; the first
        # one above it ends the walk (and, if it is a "fixed", is this interval's fix).
        affected = False
        fix: str | None = None
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
            return _Hit(entry, fix)
    # An explicit versions list names affected versions without saying where the fix is.
    return _Hit(entry, None) if text in entry.versions else None


class Matcher:
    """Loads the advisories an inventory needs, once, and turns packages into findings."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, inventory: Inventory) -> MatchReport:
        """Findings for every package of the inventory, and the packages that were skipped."""
        with _no_gc():
            return self._run(inventory)

    def _run(self, inventory: Inventory) -> MatchReport:
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
                entry = _parse_entry(row, scheme.key)
            except VersionError as exc:  # only reachable for data stored by an older importer
                skipped.append(f"advisory {row[7]} for {row[1]}: {exc}")
                continue
            out.setdefault((row[0], row[1]), []).append(entry)
        return out


@contextmanager
def _no_gc() -> Iterator[None]:
    """Matching allocates many small acyclic objects; the cyclic collector would walk the whole
    heap again and again for nothing (it costs a third of the time on large inventories)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def match(inventory: Inventory, store: Store) -> list[Finding]:
    """The vulnerability findings for an inventory (see :class:`Matcher` for skipped packages)."""
    return list(Matcher(store).run(inventory).findings)


def _resource(inv: Inventory) -> ResourceRef:
    digest = inv.image.manifest_digest if inv.image else None
    return ResourceRef(kind="image", name=inv.source, digest=digest)


def _groups(hits: list[_Hit], ids: Sequence[tuple[str, ...]]) -> list[list[int]]:
    """Union hits whose id sets overlap (a GHSA aliasing a CVE, a PYSEC aliasing both)."""
    if len(hits) == 1:
        return [[0]]
    parent = list(range(len(hits)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, own in enumerate(ids):
        for ident in own:
            j = owner.setdefault(ident, i)
            if j != i:
                parent[find(i)] = find(j)
    grouped: dict[int, list[int]] = {}
    for i in range(len(hits)):
        grouped.setdefault(find(i), []).append(i)
    return list(grouped.values())


def _primary(ids: set[str]) -> str:
    for prefix in ("CVE-", "GHSA-"):
        pick = sorted(i for i in ids if i.startswith(prefix))
        if pick:
            return pick[0]
    return sorted(ids)[0]


@cache
def _rating(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        sev = Severity.parse(text)
    except UsageError:
        return None
    return None if sev is Severity.UNKNOWN else sev


def _severity(group: list[_Hit], best: _Entry | None, is_distro: bool) -> Severity:
    """The distribution's rating for OS packages, else CVSS, else a record's text rating."""
    rated = (_rating(h.entry.distro_severity or h.entry.record_severity) for h in group)
    vendor = next((s for s in rated if s is not None), None)
    if is_distro and vendor is not None:
        return vendor
    if best is not None and best.cvss_score is not None:
        return Severity.from_cvss(best.cvss_score)
    return vendor or Severity.UNKNOWN


@dataclass(slots=True)
class _Group:
    hits: list[_Hit]
    ids: set[str]
    primary: str | None = None


def _merge(hits: list[_Hit]) -> list[_Group]:
    """One group per vulnerability. Records naming each other (aliases, or a single upstream id
    as UBUNTU-CVE-x has) merge; a record bundling several CVEs (DSA, DLA, USN) joins every group
    of a CVE it lists, and stands on its own only when none of them matched."""
    plain: list[_Hit] = []
    plain_ids: list[tuple[str, ...]] = []
    bundles: list[tuple[_Hit, tuple[str, ...]]] = []
    for h in hits:
        up = h.entry.upstream if h.entry.row[15] != "[]" else ()
        if len(up) > 1:
            bundles.append((h, up))
        else:
            plain.append(h)
            plain_ids.append((h.entry.vuln_id, *h.entry.aliases, *up))
    groups = [
        _Group(hits=[plain[i] for i in m], ids={x for i in m for x in plain_ids[i]})
        for m in (_groups(plain, plain_ids) if plain else [])
    ]
    for h, up in bundles:
        joined = [g for g in groups if g.ids.intersection(up)]
        for g in joined:
            g.hits.append(h)
            g.ids.add(h.entry.vuln_id)
        if not joined:
            groups.append(_Group(hits=[h], ids={h.entry.vuln_id, *up}, primary=h.entry.vuln_id))
    return groups


def _findings(t: Target, hits: list[_Hit], scheme: Scheme, resource: ResourceRef) -> list[Finding]:
    out = []
    is_distro = t.ecosystem.split(":", 1)[0] in _DISTRO_ECOSYSTEMS
    pkg = t.package
    for g in _merge(hits):
        group, ids = g.hits, g.ids
        primary = g.primary or _primary(ids)
        fixes = [h.fixed for h in group if h.fixed]
        state = max(
            ("fixed" if h.fixed else h.entry.fix_state for h in group),
            key=lambda s: _FIX_RANK.get(s, 0),
        )
        if state == "fixed" and not fixes:
            state = "not-fixed"  # a fixed range the installed version is not below
        scored = [h.entry for h in group if h.entry.cvss_score is not None]
        best = max(scored, key=lambda e: e.cvss_score or 0.0) if scored else None
        summary = next((h.entry.summary for h in group if h.entry.summary), "")
        urls = tuple(dict.fromkeys(u for h in group for u in h.entry.refs))[:10]
        out.append(
            Finding(
                id=primary,
                pillar=Pillar.SCANNING,
                title=summary.splitlines()[0][:200] if summary else primary,
                severity=_severity(group, best, is_distro),
                resource=resource,
                details=VulnerabilityDetails(
                    package=pkg.name,
                    package_type=pkg.type,
                    installed_version=pkg.version,
                    fixed_version=(fixes[0] if len(fixes) == 1 else max(fixes, key=scheme.key))
                    if fixes
                    else None,
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
