"""The matcher as it was before its speed-ups (issue 19), kept as the reference the optimized
path is compared with: one query per package through SQLAlchemy, every row's ranges parsed with
the scheme's uncached parser, and findings built by the original, straightforward walk."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sqlalchemy import select

from stockade.model import Finding, Pillar, ResourceRef, Severity
from stockade.model.errors import UsageError
from stockade.scanning.advisories import ecosystems
from stockade.scanning.advisories.model import unbounded_event
from stockade.scanning.advisories.store import _LOOKUP_COLUMNS
from stockade.scanning.advisory_tables import adv_affected, adv_vulnerabilities
from stockade.scanning.interface import Inventory, VulnerabilityDetails
from stockade.scanning.match_eval import Entry, Hit, affected_by
from stockade.scanning.matcher import Target, _resource, _with_compatible, target_for
from stockade.scanning.versions import Scheme, VersionError, scheme_for
from stockade.store import Store


def _strings(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _entry(row: Any, parse: Any) -> Entry:
    ranges = tuple(
        tuple((kind, None if unbounded_event(kind, v) else parse(v), v) for kind, v in events)
        for _type, events in json.loads(row[2])
    )
    return Entry(tuple(row), ranges, frozenset(json.loads(row[3])))


def reference_findings(store: Store, inventory: Inventory) -> list[Finding]:
    """Every finding of the inventory, the slow way (no bulk query, no caches)."""
    d = inventory.distro
    distro_eco = ecosystems.from_distro(d.id, d.version_id, d.version_codename) if d else None
    targets = [t for p in inventory.packages if not isinstance(t := target_for(p, distro_eco), str)]
    join = adv_affected.join(
        adv_vulnerabilities, adv_affected.c.vuln_pk == adv_vulnerabilities.c.pk
    )
    by_package: dict[int, list[Target]] = {}
    for t in _with_compatible([t for t in targets if scheme_for(t.ecosystem) is not None]):
        by_package.setdefault(id(t.package), []).append(t)
    out: list[Finding] = []
    with store.connect() as conn:
        for lookups in by_package.values():
            scheme = scheme_for(lookups[0].ecosystem)
            assert scheme is not None
            hits: list[Hit] = []
            for t in lookups:
                q = (
                    select(*_LOOKUP_COLUMNS)
                    .select_from(join)
                    .where(
                        adv_affected.c.ecosystem == t.ecosystem, adv_affected.c.package == t.name
                    )
                    # A package's rows in the store's order (PostgreSQL's heap order is not).
                    .order_by(adv_affected.c.pk)
                )
                rows = list(conn.execute(q))
                if not rows:
                    continue
                try:
                    key = scheme.parse(t.version)
                except VersionError:
                    break
                for row in rows:
                    h = affected_by(key, t.version, _entry(row, scheme.parse))
                    if h is not None:
                        hits.append(Hit(h.entry, h.fixed, t.via) if t.via else h)
            if hits:
                own = next(t for t in lookups if t.via is None)
                out.extend(build_findings(own, hits, scheme, _resource(inventory)))
        return [_scored_elsewhere(conn, f) for f in out]


def _scored_elsewhere(conn: Any, f: Finding) -> Finding:
    """A finding without CVSS takes the score of the NVD record of its id or an alias, and that
    score's rating when it had none."""
    d = f.details
    assert isinstance(d, VulnerabilityDetails)
    if d.cvss_score is not None:
        return f
    v = adv_vulnerabilities.c
    rows = [
        (vector, score)
        for i in (f.id, *d.aliases)
        for vector, score in conn.execute(
            select(v.cvss_vector, v.cvss_score).where(
                v.vuln_id == i, v.data_source == "nvd", v.cvss_score.is_not(None)
            )
        )
    ]
    if not rows:
        return f
    vector, score = max(rows, key=lambda r: (not _v2(r[0]), r[1]))
    severity = f.severity
    if severity is Severity.UNKNOWN:
        severity = Severity.from_cvss(score, v2=_v2(vector))
    return replace(f, severity=severity, details=replace(d, cvss_score=score, cvss_vector=vector))


_DISTRO_ECOSYSTEMS = (
    "debian", "ubuntu", "alpine", "redhat", "rocky", "almalinux", "wolfi", "chainguard", "amazon",
    "sles", "sle-micro", "sl-micro", "opensuse-leap", "opensuse-leap-micro", "ubuntu-fips",
    "ubuntu-realtime", "ubuntu-bluefield",
)  # fmt: skip
_FIX_RANK = {"fixed": 3, "wont-fix": 2, "not-fixed": 1, "unknown": 0}


def _groups(hits: list[Hit], ids: Sequence[tuple[str, ...]]) -> list[list[int]]:
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


def _v2(vector: str | None) -> bool:
    return vector is not None and not vector.startswith(("CVSS:3", "CVSS:4"))


@cache
def _rating(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        sev = Severity.parse(text)
    except UsageError:
        return None
    return None if sev is Severity.UNKNOWN else sev


def _severity(group: list[Hit], best: Entry | None, is_distro: bool) -> Severity:
    """The distribution's rating for OS packages, else CVSS, else a record's text rating."""
    rated = (_rating(h.entry.distro_severity or h.entry.record_severity) for h in group)
    vendor = next((s for s in rated if s is not None), None)
    if is_distro and vendor is not None:
        return vendor
    if best is not None and best.cvss_score is not None:
        return Severity.from_cvss(best.cvss_score, v2=_v2(best.cvss_vector))
    return vendor or Severity.UNKNOWN


@dataclass(slots=True)
class _Group:
    hits: list[Hit]
    ids: set[str]
    primary: str | None = None


def _merge(hits: list[Hit]) -> list[_Group]:
    """One group per vulnerability. Records naming each other (aliases, or a single upstream id
    as UBUNTU-CVE-x has) merge; a record bundling several CVEs (DSA, DLA, USN) joins every group
    of a CVE it lists, and stands on its own only when none of them matched."""
    plain: list[Hit] = []
    plain_ids: list[tuple[str, ...]] = []
    bundles: list[tuple[Hit, tuple[str, ...]]] = []
    for h in hits:
        up = _strings(h.entry.row[15]) if h.entry.row[15] != "[]" else ()
        if len(up) > 1:
            bundles.append((h, up))
        else:
            plain.append(h)
            plain_ids.append((h.entry.vuln_id, *_strings(h.entry.row[9]), *up))
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


def build_findings(
    t: Target, hits: list[Hit], scheme: Scheme, resource: ResourceRef
) -> list[Finding]:
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
        best = (
            max(scored, key=lambda e: (not _v2(e.cvss_vector), e.cvss_score or 0.0))
            if scored
            else None
        )
        summary = next((h.entry.summary for h in group if h.entry.summary), "")
        urls = tuple(dict.fromkeys(u for h in group for u in _strings(h.entry.row[14])))[:10]
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
                    data_source=", ".join(sorted({_source_label(h, t) for h in group})),
                    urls=urls,
                ),
            )
        )
    return out


def _source_label(hit: Hit, t: Target) -> str:
    entry = hit.entry
    eco = hit.via or t.ecosystem
    label = f"osv:{eco}" if entry.data_source == "osv" else entry.data_source
    if hit.via:  # matched through a declared compatibility: say so
        return f"{label} ({t.ecosystem} matched as {hit.via})"
    return label
