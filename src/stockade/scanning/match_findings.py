"""Turning the matching rows of one package into findings: one per vulnerability.

Records naming each other merge; bundles (DSA, DLA, USN) join the findings of the CVEs they list;
the fix state, fixed version and severity are chosen from the merged records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import TYPE_CHECKING, TypeAlias

from stockade.model import Finding, Pillar, ResourceRef, Severity
from stockade.model.errors import UsageError
from stockade.model.finding import Status
from stockade.model.slots import slot_constructor
from stockade.scanning.advisories.cvss import is_v2
from stockade.scanning.advisories.store import HIT_FIX_STATE, HIT_SEVERITY, RecordRow, SpanHit
from stockade.scanning.interface import VulnerabilityDetails
from stockade.scanning.match_eval import json_strings, load_json
from stockade.scanning.versions import Scheme

if TYPE_CHECKING:
    from stockade.scanning.matcher import Target

_DISTRO_ECOSYSTEMS = (
    "debian", "ubuntu", "alpine", "redhat", "rocky", "almalinux", "wolfi", "chainguard", "amazon",
    "sles", "sle-micro", "sle-micro-rancher", "sl-micro", "opensuse-leap", "opensuse-leap-micro",
    "ubuntu-fips", "ubuntu-realtime", "ubuntu-bluefield",
)  # fmt: skip
_FIX_RANK = {"fixed": 3, "wont-fix": 2, "not-fixed": 1, "unknown": 0}
# One matching row: the span query's row (its record's columns, then the affected row's fix
# state and severity: see ``SpanHit``), the fix of the interval the installed version falls in,
# and the compatible release it was matched through (``redhat:9`` for Rocky 9), if any.
RowHit: TypeAlias = tuple[SpanHit, str | None, str | None]
_FIX_STATE, _SEVERITY = HIT_FIX_STATE, HIT_SEVERITY  # the affected row's, in a SpanHit


_new_finding = slot_constructor(Finding)
_new_details = slot_constructor(VulnerabilityDetails)


def _groups(n: int, ids: Sequence[tuple[str, ...]]) -> list[list[int]]:
    """Union hits whose id sets overlap (a GHSA aliasing a CVE, a PYSEC aliasing both)."""
    if n == 1:
        return [[0]]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    merged = False
    for i, own in enumerate(ids):
        for ident in own:
            j = owner.setdefault(ident, i)
            if j != i:
                parent[find(i)] = find(j)
                merged = True
    if not merged:  # the common case: records of different vulnerabilities
        return [[i] for i in range(n)]
    grouped: dict[int, list[int]] = {}
    for i in range(n):
        grouped.setdefault(find(i), []).append(i)
    return list(grouped.values())


def _primary(ids: set[str]) -> str:
    if len(ids) == 1:
        return next(iter(ids))
    for prefix in ("CVE-", "GHSA-"):
        pick = [i for i in ids if i.startswith(prefix)]
        if pick:
            return min(pick)
    return min(ids)


def _primary_of_two(a: str, b: str) -> str:
    """``_primary({a, b})`` of two different ids."""
    for prefix in ("CVE-", "GHSA-"):
        in_a, in_b = a.startswith(prefix), b.startswith(prefix)
        if in_a or in_b:
            return min(a, b) if in_a and in_b else (a if in_a else b)
    return min(a, b)


@cache
def _is_distro(ecosystem: str) -> bool:
    return ecosystem.split(":", 1)[0] in _DISTRO_ECOSYSTEMS


@cache
def _rating(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        sev = Severity.parse(text)
    except UsageError:
        return None
    return None if sev is Severity.UNKNOWN else sev


@lru_cache(maxsize=1024)  # base scores have one decimal: about a hundred values
def _cvss_rating(score: float, v2: bool) -> Severity:
    return Severity.from_cvss(score, v2=v2)


@dataclass(slots=True)
class _Group:
    hits: list[RowHit]
    ids: set[str]
    primary: str | None = None


# One vulnerability of a package: its hits, every id its records carry (a tuple may repeat an
# id), and its id when a bundle standing alone gives it (else chosen from the ids).
_Merged: TypeAlias = tuple[list[RowHit], "tuple[str, ...] | set[str]", str | None]


def _merge(hits: list[RowHit]) -> list[_Merged]:
    """One group per vulnerability (see ``_merge_records``). Most packages' records bundle
    nothing and share no id: each hit is then its own group, found in one pass."""
    groups: list[_Merged] = []
    seen: set[str] = set()
    n = 0
    for h in hits:
        rec = h[0]
        if rec[9] != "[]":  # an upstream list: a bundle or a record naming its CVE
            return _merge_records(hits)
        ids = (rec[1],) if rec[3] == "[]" else (rec[1], *json_strings(rec[3]))
        groups.append(([h], ids, None))
        seen.update(ids)
        n += len(ids)
    return groups if len(seen) == n else _merge_records(hits)


def _merge_records(hits: list[RowHit]) -> list[_Merged]:
    """One group per vulnerability. Records naming each other (aliases, or a single upstream id
    as UBUNTU-CVE-x has) merge; a record bundling several CVEs (DSA, DLA, USN) joins every group
    of a CVE it lists, and stands on its own only when none of them matched."""
    plain: list[RowHit] = []
    plain_ids: list[tuple[str, ...]] = []
    bundles: list[tuple[RowHit, tuple[str, ...]]] = []
    for h in hits:
        rec = h[0]
        if rec[9] == "[]":  # most records bundle nothing: no JSON to decode
            plain.append(h)
            plain_ids.append((rec[1],) if rec[3] == "[]" else (rec[1], *load_json(rec[3])))
            continue
        up = json_strings(rec[9])
        if len(up) > 1:
            bundles.append((h, up))
        else:
            plain.append(h)
            plain_ids.append((rec[1], *json_strings(rec[3]), *up))
    groups = []
    for m in _groups(len(plain), plain_ids) if plain else []:
        if len(m) == 1:
            groups.append(_Group([plain[m[0]]], set(plain_ids[m[0]])))
        else:
            groups.append(_Group([plain[i] for i in m], {x for i in m for x in plain_ids[i]}))
    for h, up in bundles:
        joined = [g for g in groups if g.ids.intersection(up)]
        for g in joined:
            g.hits.append(h)
            g.ids.add(h[0][1])
        if not joined:
            groups.append(_Group([h], {h[0][1], *up}, h[0][1]))
    return [(g.hits, g.ids, g.primary) for g in groups]


def build_findings(
    t: Target, hits: list[RowHit], scheme: Scheme, resource: ResourceRef
) -> list[Finding]:
    """The findings of one package from its matching rows (see ``RowHit``)."""
    out = []
    is_distro = _is_distro(t.ecosystem)
    pkg = t.package
    name, ptype, installed, purl = pkg.name, pkg.type, pkg.version, pkg.purl
    locations, layer = pkg.locations, pkg.layer
    labels: dict[tuple[str, str | None], str] = {}
    for group, ids, primary in _merge(hits):
        if len(ids) == 1:
            if primary is None:
                primary = next(iter(ids))
            aliases: tuple[str, ...] = ()
        elif primary is None and isinstance(ids, tuple) and len(ids) == 2 and ids[0] != ids[1]:
            first, second = ids  # a record and its one alias (GHSA and CVE): most OSV records
            primary = _primary_of_two(first, second)
            aliases = (second if primary == first else first,)
        else:
            idset = ids if isinstance(ids, set) else set(ids)
            if primary is None:
                primary = _primary(idset)
            aliases = () if len(idset) == 1 else tuple(sorted(idset - {primary}))
        if len(group) == 1:
            rec, fixed, via = group[0]
            fixed_version = fixed
            state = rec[_FIX_STATE]
            if fixed:
                state = "fixed"
            elif state == "fixed":
                state = "not-fixed"
            score = rec[7]
            vector = rec[6] if score is not None else None
            summary = rec[4]
            vendor = _rating(rec[_SEVERITY] or rec[5])
            urls = tuple(dict.fromkeys(json_strings(rec[8])))[:10] if rec[8] != "[]" else ()
            origin = (rec[2], via)
            data_source = labels.get(origin)
            if data_source is None:
                data_source = labels[origin] = _source_label(rec[2], via, t)
        else:
            fixed_version, state, score, vector, summary, vendor, urls, data_source = _pick(
                group, scheme, t, labels
            )
        if is_distro and vendor is not None:
            severity = vendor  # the distribution's rating for OS packages, else CVSS, else text
        elif score is not None:
            severity = _cvss_rating(score, is_v2(vector))
        else:
            severity = vendor or Severity.UNKNOWN
        if not summary:
            title = primary
        elif summary.isprintable():  # no line break of any kind (``str.splitlines``'s)
            title = summary[:200]
        else:
            title = summary.splitlines()[0][:200]
        out.append(
            _new_finding(
                id=primary,
                pillar=Pillar.SCANNING,
                title=title,
                severity=severity,
                resource=resource,
                status=Status.FAIL,
                details=_new_details(
                    package=name,
                    package_type=ptype,
                    installed_version=installed,
                    fixed_version=fixed_version,
                    fix_state=state,
                    aliases=aliases,
                    cvss_score=score,
                    cvss_vector=vector,
                    purl=purl,
                    locations=locations,
                    layer=layer,
                    data_source=data_source,
                    urls=urls,
                ),
                compliance=(),
            )
        )
    return out


def _pick(
    group: list[RowHit], scheme: Scheme, t: Target, labels: dict[tuple[str, str | None], str]
) -> tuple[str | None, str, float | None, str | None, str, Severity | None, tuple[str, ...], str]:
    """What the finding of several merged records says, in one walk. Ties keep the first hit,
    as max() would: the strongest fix state, the highest CVSS score (v3/v4 before v2), the first
    summary and the first distribution or record rating. Returns (fixed version, fix state, CVSS score and
    vector, summary, vendor rating, references, data source)."""
    fixes: list[str] = []
    state, rank = "", -1
    best: RecordRow | None = None
    summary = ""
    vendor: Severity | None = None
    urls: dict[str, None] = {}
    sources: set[str] = set()
    for rec, fixed, via in group:
        if fixed:
            fixes.append(fixed)
            s = "fixed"
        else:
            s = rec[_FIX_STATE]
        r = _FIX_RANK.get(s, 0)
        if r > rank:
            state, rank = s, r
        score = rec[7]
        if score is not None and (
            best is None or (not is_v2(rec[6]), score) > (not is_v2(best[6]), best[7] or 0.0)
        ):
            best = rec  # a v3/v4 score outranks any v2 score: they are on different scales
        if not summary and rec[4]:
            summary = rec[4]
        if vendor is None:
            vendor = _rating(rec[_SEVERITY] or rec[5])
        if len(urls) < 10 and rec[8] != "[]":
            urls.update(dict.fromkeys(json_strings(rec[8])))
        origin = (rec[2], via)
        if origin not in labels:
            labels[origin] = _source_label(rec[2], via, t)
        sources.add(labels[origin])
    if state == "fixed" and not fixes:
        state = "not-fixed"  # a fixed range the installed version is not below
    fixed_version = (fixes[0] if len(fixes) == 1 else max(fixes, key=scheme.key)) if fixes else None
    return (
        fixed_version,
        state,
        best[7] if best else None,
        best[6] if best else None,
        summary,
        vendor,
        tuple(urls)[:10],
        ", ".join(sorted(sources)),
    )


def _source_label(data_source: str, via: str | None, t: Target) -> str:
    eco = via or t.ecosystem
    label = f"osv:{eco}" if data_source == "osv" else data_source
    if via:  # matched through a declared compatibility: say so
        return f"{label} ({t.ecosystem} matched as {via})"
    return label


def ids_without_score(findings: Sequence[Finding]) -> set[str]:
    """The ids and aliases of the findings that have no CVSS score."""
    out: set[str] = set()
    for f in findings:
        d = f.details
        if isinstance(d, VulnerabilityDetails) and d.cvss_score is None:
            out.add(f.id)
            out.update(d.aliases)
    return out


def with_scores_of_ids(
    findings: Sequence[Finding], scores: Mapping[str, tuple[str, float]]
) -> list[Finding]:
    """A finding whose records carry no CVSS takes the score of the NVD record of its id or an
    alias (``scores``: Alpine's secdb has no score, Debian's tracker often only "not yet
    assigned"), and its rating when it had none; a distribution's own rating stays."""
    out = []
    for f in findings:
        d = f.details
        if not isinstance(d, VulnerabilityDetails) or d.cvss_score is not None:
            out.append(f)
            continue
        found = [scores[i] for i in (f.id, *d.aliases) if i in scores]
        if not found:
            out.append(f)
            continue
        vector, score = max(found, key=lambda vs: (not is_v2(vs[0]), vs[1]))
        severity = f.severity
        if severity is Severity.UNKNOWN:
            severity = _cvss_rating(score, is_v2(vector))
        details = replace(d, cvss_score=score, cvss_vector=vector)
        out.append(replace(f, severity=severity, details=details))
    return out
