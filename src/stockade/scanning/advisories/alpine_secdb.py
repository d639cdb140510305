"""Alpine secdb JSON to normalized advisories.

Two shapes are read:

- the published secdb (``secdb.alpinelinux.org/v3.19/main.json``):
  ``{"distroversion": "v3.19", "reponame": "main",
  "packages": [{"pkg": {"name": origin, "secfixes": {"1.2-r0": ["CVE-..."]}}}]}``;
  a fixed version of "0" means "never affected";
- the per-CVE parts that osv.dev's converter writes: a list of ``{"pkg_name", "ecosystem":
  "Alpine:v3.19", "fixed_version": {"AffectedVersions":
  [{"Introduced", "Fixed", "LastAffected"}]}}``.

secdb lists fixed versions only: an unfixed Alpine issue is not in it.

Wolfi (``packages.wolfi.dev/os/security.json``) and Chainguard
(``packages.cgr.dev/chainguard/security.json``) publish the same document for their rolling
distributions, without ``distroversion``: ``{"apkurl", "archs", "reponame", "urlprefix",
"packages": [{"pkg": {"name", "secfixes"}}]}``. Its ``urlprefix`` says whose it is (the host
``packages.wolfi.dev``, or one under ``cgr.dev``); the ecosystem is ``wolfi`` or ``chainguard``
(no release), read the same way (``0`` is "not affected" there too).

One id listed under several fixed versions of one package (real secdb data has both kinds) is
read by :func:`fix_ranges`, here and for osv.dev's records (one entry per listing there):

- a later listing in the same release line is the fix listed again, at the upstream release that
  carries it (openssl ``1.0.2n-r0`` and again ``1.0.2o-r0`` for CVE-2017-3738; a "regression fix"
  entry): the first listing fixed it, and ``1.0.2n-r0`` is not affected;
- a listing in a later release line is that line's own fix, as when a package's history merges
  another line's (openssl's ``1.1.1`` and ``3.0`` fixes, perl ``5.26.3`` and ``5.28.1``): from
  the line's start to that fix is affected too (``5.28.0`` is).

Keeping only the lowest fix missed the second case; a range up to each fix from the first version
(what osv.dev's entries say read one by one) reported the first case's fixed versions.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeGuard
from urllib.parse import urlparse

from stockade.scanning.advisories import ecosystems
from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    EventKind,
    FixState,
    Problem,
    VersionRange,
)
from stockade.scanning.versions import SCHEMES, VersionError

_APK = SCHEMES["apk"]
_ID = re.compile(r"[A-Z][A-Z0-9]*-[0-9A-Za-z-]+")


def is_secdb(doc: object) -> TypeGuard[dict[str, Any]]:
    """Alpine's secdb (``distroversion``) or a rolling distribution's (``apkurl``)."""
    return (
        isinstance(doc, dict)
        and ("distroversion" in doc or "apkurl" in doc)
        and isinstance(doc.get("packages"), list)
    )


# The apk secdb publishers of rolling distributions, by the host of their ``urlprefix``.
_ROLLING = {"packages.wolfi.dev": "wolfi", "cgr.dev": "chainguard"}


def source_of(doc: dict[str, Any]) -> str:
    """The data source name of a secdb document: ``alpine-secdb``, ``wolfi-secdb``..."""
    if "distroversion" in doc:
        return "alpine-secdb"
    return f"{_ecosystem(doc) or 'apk'}-secdb"


def _ecosystem(doc: dict[str, Any]) -> str | None:
    """``wolfi`` or ``chainguard`` for a rolling distribution's secdb, from its ``urlprefix``
    (None when it is neither's)."""
    host = urlparse(str(doc.get("urlprefix") or "")).hostname or ""
    for suffix, eco in _ROLLING.items():
        if host == suffix or host.endswith(f".{suffix}"):
            return eco
    return None


def is_parts(doc: object) -> TypeGuard[list[dict[str, Any]]]:
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(d, dict) and "pkg_name" in d and "fixed_version" in d for d in doc)
    )


def convert_secdb(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    problems: list[Problem] = []
    if "distroversion" in doc:
        try:
            eco = ecosystems.from_osv(f"Alpine:{doc['distroversion']}")
        except ecosystems.UnknownEcosystem as exc:
            return [], [Problem(where=where, message=f"bad distroversion: {exc}")]
    else:
        rolling = _ecosystem(doc)
        if rolling is None:
            message = (
                f"apk secdb without distroversion from {doc.get('urlprefix')!r}: neither"
                " Wolfi's (packages.wolfi.dev) nor Chainguard's (cgr.dev); skipped"
            )
            return [], [Problem(where=where, message=message)]
        eco = rolling
    source = source_of(doc)
    # One advisory per (id, origin); the same id fixed in several versions: see fix_ranges.
    by_id: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, item in enumerate(doc["packages"]):
        pkg = item.get("pkg") if isinstance(item, dict) else None
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            problems.append(
                Problem(where=f"{where}#packages[{i}]", message="entry without pkg.name")
            )
            continue
        secfixes = pkg.get("secfixes")
        if not isinstance(secfixes, dict):
            if secfixes is not None:
                problems.append(
                    Problem(where=f"{where}#{pkg['name']}", message="secfixes is not an object")
                )
            continue
        for version, ids in secfixes.items():
            here = f"{where}#{pkg['name']}@{version}"
            if not isinstance(ids, list):
                problems.append(Problem(where=here, message="the ids are not a list"))
                continue
            if version == "0":
                continue  # "not affected in this release"
            try:
                _APK.key(version)
            except VersionError as exc:
                problems.append(Problem(where=here, message=str(exc)))
                continue
            for text in ids or []:
                found = _ID.findall(str(text))
                if not found:
                    problems.append(Problem(where=here, message=f"no advisory id in {text!r}"))
                for vid in found:
                    by_id[(vid, pkg["name"])].append(version)
    out = [
        _advisory(
            vid,
            [(eco, origin, intro, fixed) for intro, fixed in fix_ranges(versions)],
            source,
        )
        for (vid, origin), versions in by_id.items()
    ]
    return out, problems


_NUMS = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def fix_ranges(fixes: Iterable[str]) -> list[tuple[str, str]]:
    """The affected ranges, as (introduced, fixed), of one id in one package that secdb lists
    under each of ``fixes`` (valid apk versions). Below the lowest fix is affected; a higher fix
    opens a range of its own only when it starts a release line above the fix before it (its
    shortest dotted prefix above that fix, shorter than its own numbers: ``3`` for ``3.0.3-r0``
    after ``1.1.1o-r0``, ``5.28`` for ``5.28.1-r0`` after ``5.26.3-r0``); otherwise it is the
    same fix listed again."""
    ordered = sorted(set(fixes), key=_APK.key)
    out = [("0", ordered[0])]
    for before, fix in itertools.pairwise(ordered):
        m = _NUMS.match(fix)
        parts = m.group(0).split(".") if m else []
        for n in range(1, len(parts)):
            start = ".".join(parts[:n])
            if _APK.key(start) > _APK.key(before):
                out.append((start, fix))
                break
    return out


def merge_listings(affected: list[Affected]) -> list[Affected]:
    """osv.dev writes one affected entry per secdb listing (``introduced 0``, ``fixed X``): the
    entries of one Alpine package become :func:`fix_ranges`'s ranges, as the secdb import reads
    them. An entry whose ``introduced`` is above its ``fixed`` (osv.dev joins an upstream range's
    start from NVD with secdb's fix: ALPINE-CVE-2018-18311 says introduced 5.28.0, fixed
    5.26.3-r0) is that listing too: read as written it reported every perl from 5.28.0 on, and
    none below the fix. So is each range of an entry made of such ranges. Other entries are kept
    as they are."""
    listed: dict[tuple[str, str], list[tuple[Affected, str]]] = defaultdict(list)
    out: list[Affected] = []
    rewrite = False
    for a in affected:
        fixes = _listings(a)
        if not fixes:
            out.append(a)
            continue
        listed[(a.ecosystem, a.package)] += [(a, f) for f in fixes]
        rewrite = rewrite or len(fixes) > 1 or any(r.events[0][1] != "0" for r in a.ranges)
    if not rewrite and all(len(v) == 1 for v in listed.values()):
        return affected
    for entries in listed.values():
        first = entries[0][0]
        out += [
            replace(first, ranges=(_range(intro, fixed),), fixed_version=fixed)
            for intro, fixed in fix_ranges(f for _, f in entries)
        ]
    return out


def _listings(a: Affected) -> list[str]:
    """The fixed versions when every range of ``a`` is one secdb listing as osv.dev writes it
    (``introduced 0, fixed X``, or with an ``introduced`` above X), else none."""
    if not a.ecosystem.startswith("alpine:") or not a.ranges or a.versions:
        return []
    fixes = []
    for r in a.ranges:
        events = r.events
        if (
            len(events) != 2
            or events[0][0] != EventKind.INTRODUCED
            or events[1][0] != EventKind.FIXED
        ):
            return []
        intro, fixed = events[0][1], events[1][1]
        if intro != "0" and _APK.key(intro) <= _APK.key(fixed):
            return []  # a real range
        fixes.append(fixed)
    return fixes


def convert_parts(doc: list[dict[str, Any]], where: str) -> tuple[list[Advisory], list[Problem]]:
    problems: list[Problem] = []
    vid_match = _ID.search(where.rsplit("/", 1)[-1])
    if not vid_match:
        return [], [Problem(where=where, message="cannot tell the advisory id from the file name")]
    entries = []
    for i, part in enumerate(doc):
        here = f"{where}#{i}"
        try:
            eco = ecosystems.from_osv(str(part["ecosystem"]))
            for av in (part["fixed_version"] or {}).get("AffectedVersions") or []:
                fixed = av.get("Fixed") or ""
                if not fixed:
                    continue
                introduced = av.get("Introduced") or "0"
                for v in (fixed, introduced) if introduced != "0" else (fixed,):
                    _APK.key(v)  # a bad version skips this part, not the import
                entries.append((eco, str(part["pkg_name"]), introduced, fixed))
        except (
            KeyError,
            TypeError,
            AttributeError,
            VersionError,
            ecosystems.UnknownEcosystem,
        ) as exc:
            problems.append(Problem(where=here, message=f"bad part: {exc}"))
    return ([_advisory(vid_match.group(0), _regroup(entries))] if entries else []), problems


def _regroup(entries: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """The parts' entries of one package that are secdb listings (``introduced`` 0, or above
    the fix, as in :func:`merge_listings`) read as :func:`fix_ranges` reads them; others kept."""
    listed: dict[tuple[str, str], list[str]] = defaultdict(list)
    out = []
    for eco, pkg, intro, fixed in entries:
        if intro == "0" or _APK.key(intro) > _APK.key(fixed):
            listed[(eco, pkg)].append(fixed)
        else:
            out.append((eco, pkg, intro, fixed))
    for (eco, pkg), fixes in listed.items():
        out += [(eco, pkg, i, f) for i, f in fix_ranges(fixes)]
    return out


def _advisory(
    vid: str, entries: list[tuple[str, str, str, str]], source: str = "alpine-secdb"
) -> Advisory:
    return Advisory(
        id=vid,
        source=source,
        affected=tuple(
            Affected(
                ecosystem=eco,
                package=origin,
                ranges=(_range(intro, fixed),),
                fix_state=FixState.FIXED,
                fixed_version=fixed,
            )
            for eco, origin, intro, fixed in entries
        ),
    )


def _range(introduced: str, fixed: str) -> VersionRange:
    return VersionRange(
        type="ECOSYSTEM", events=((EventKind.INTRODUCED, introduced), (EventKind.FIXED, fixed))
    )
