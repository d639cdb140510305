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
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, TypeGuard

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
    return (
        isinstance(doc, dict) and "distroversion" in doc and isinstance(doc.get("packages"), list)
    )


def is_parts(doc: object) -> TypeGuard[list[dict[str, Any]]]:
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(d, dict) and "pkg_name" in d and "fixed_version" in d for d in doc)
    )


def convert_secdb(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    problems: list[Problem] = []
    try:
        eco = ecosystems.from_osv(f"Alpine:{doc['distroversion']}")
    except ecosystems.UnknownEcosystem as exc:
        return [], [Problem(where=where, message=f"bad distroversion: {exc}")]
    # One advisory per (id, origin); the same id fixed in several versions keeps the lowest.
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
        _advisory(vid, [(eco, origin, "0", min(versions, key=_APK.key))])
        for (vid, origin), versions in by_id.items()
    ]
    return out, problems


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
    return ([_advisory(vid_match.group(0), entries)] if entries else []), problems


def _advisory(vid: str, entries: list[tuple[str, str, str, str]]) -> Advisory:
    return Advisory(
        id=vid,
        source="alpine-secdb",
        affected=tuple(
            Affected(
                ecosystem=eco,
                package=origin,
                ranges=(
                    VersionRange(
                        type="ECOSYSTEM",
                        events=((EventKind.INTRODUCED, intro), (EventKind.FIXED, fixed)),
                    ),
                ),
                fix_state=FixState.FIXED,
                fixed_version=fixed,
            )
            for eco, origin, intro, fixed in entries
        ),
    )
