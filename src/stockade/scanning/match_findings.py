"""Turning the matching rows of one package into findings: one per vulnerability.

Records naming each other merge; bundles (DSA, DLA, USN) join the findings of the CVEs they list;
the fix state, fixed version and severity are chosen from the merged records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from stockade.model import Finding, Pillar, ResourceRef, Severity
from stockade.model.errors import UsageError
from stockade.scanning.interface import VulnerabilityDetails
from stockade.scanning.match_eval import Entry, Hit
from stockade.scanning.versions import Scheme

if TYPE_CHECKING:
    from stockade.scanning.matcher import Target

_DISTRO_ECOSYSTEMS = (
    "debian", "ubuntu", "alpine", "redhat", "rocky", "almalinux", "wolfi", "chainguard", "amazon",
    "sles", "sle-micro", "sle-micro-rancher", "sl-micro", "opensuse-leap", "opensuse-leap-micro",
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


@cache
def _rating(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        sev = Severity.parse(text)
    except UsageError:
        return None
    return None if sev is Severity.UNKNOWN else sev


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


def build_findings(
    t: Target, hits: list[Hit], scheme: Scheme, resource: ResourceRef
) -> list[Finding]:
    out = []
    is_distro = t.ecosystem.split(":", 1)[0] in _DISTRO_ECOSYSTEMS
    pkg = t.package
    for g in _merge(hits):
        group, ids = g.hits, g.ids
        primary = g.primary or _primary(ids)
        # One walk over the group picks what the finding says. Ties keep the first hit, as
        # max() would: the strongest fix state, the highest CVSS score, the first summary and
        # the first distribution or record rating.
        fixes: list[str] = []
        state, rank = "", -1
        best: Entry | None = None
        summary = ""
        vendor: Severity | None = None
        urls: dict[str, None] = {}
        sources: set[str] = set()
        for h in group:
            e = h.entry
            if h.fixed:
                fixes.append(h.fixed)
                s = "fixed"
            else:
                s = e.fix_state
            r = _FIX_RANK.get(s, 0)
            if r > rank:
                state, rank = s, r
            score = e.cvss_score
            if score is not None and (best is None or score > (best.cvss_score or 0.0)):
                best = e
            if not summary and e.summary:
                summary = e.summary
            if vendor is None:
                vendor = _rating(e.distro_severity or e.record_severity)
            if len(urls) < 10:
                urls.update(dict.fromkeys(e.refs))
            sources.add(_source_label(h, t))
        if state == "fixed" and not fixes:
            state = "not-fixed"  # a fixed range the installed version is not below
        if is_distro and vendor is not None:
            severity = vendor  # the distribution's rating for OS packages, else CVSS, else text
        elif best is not None and best.cvss_score is not None:
            severity = Severity.from_cvss(best.cvss_score)
        else:
            severity = vendor or Severity.UNKNOWN
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
                    data_source=", ".join(sorted(sources)),
                    urls=tuple(urls)[:10],
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
