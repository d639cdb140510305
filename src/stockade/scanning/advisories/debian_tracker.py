"""The Debian Security Tracker JSON (``/tracker/data/json``) to normalized advisories.

Shape: ``{source_package: {CVE: {description, scope, debianbug, releases: {codename: {status,
repositories, fixed_version, urgency, nodsa, nodsa_reason}}}}}``. Per release:

- ``resolved`` with ``fixed_version`` "0": never affected there (no entry);
- ``resolved`` with a version: affected below it, fixed;
- ``open``: affected, not fixed; with ``nodsa`` (``ignored``, ``postponed``): won't fix;
- ``undetermined``: affected, fix state unknown.

The urgency (``unimportant``, ``low``, ``medium``, ``high``, ``not yet assigned``; a trailing ``*``
marks a guess) is Debian's own severity.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from stockade.scanning.advisories.ecosystems import DEBIAN_CODENAMES
from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    EventKind,
    FixState,
    Problem,
    VersionRange,
)
from stockade.scanning.versions import SCHEMES, VersionError

_DPKG = SCHEMES["dpkg"]


def is_tracker(doc: object) -> TypeGuard[dict[str, Any]]:
    """A dict of packages whose values are dicts keyed by CVE/TEMP ids with ``releases``."""
    if not isinstance(doc, dict) or not doc or "id" in doc:
        return False
    first = next(iter(doc.values()))
    if not isinstance(first, dict) or not first:
        return False
    entry = next(iter(first.values()))
    return isinstance(entry, dict) and "releases" in entry


def convert(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    out: list[Advisory] = []
    problems: list[Problem] = []
    for package, cves in doc.items():
        if not isinstance(cves, dict):
            problems.append(
                Problem(where=f"{where}#{package}", message="package entry is not an object")
            )
            continue
        for cve, info in cves.items():
            here = f"{where}#{package}/{cve}"
            try:
                adv = _advisory(package, cve, info, problems, here)
            except (ValueError, TypeError, AttributeError) as exc:
                problems.append(Problem(where=here, message=f"malformed entry: {exc}"))
                continue
            if adv is not None:
                out.append(adv)
    return out, problems


def _urgency(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    u = value.strip().rstrip("*").strip().lower()
    return None if u in ("", "not yet assigned") else u


def _advisory(
    package: str, cve: str, info: Any, problems: list[Problem], here: str
) -> Advisory | None:
    if not isinstance(info, dict) or not isinstance(info.get("releases"), dict):
        raise ValueError("no releases object")
    affected: list[Affected] = []
    for codename, rel in info["releases"].items():
        release = DEBIAN_CODENAMES.get(codename)
        if release is None:
            problems.append(
                Problem(where=here, message=f"unknown Debian release {codename!r}; skipped")
            )
            continue
        item = _release(package, release, rel)
        if item is not None:
            affected.append(item)
    if not affected:
        return None  # not affected in any known release: nothing to match
    return Advisory(
        id=cve,
        source="debian-tracker",
        summary=str(info.get("description") or "")[:500],
        references=(f"https://security-tracker.debian.org/tracker/{cve}",),
        affected=tuple(affected),
    )


def _release(package: str, release: str, rel: Any) -> Affected | None:
    if not isinstance(rel, dict):
        raise ValueError("release entry is not an object")
    status = rel.get("status")
    fixed = rel.get("fixed_version")
    urgency = _urgency(rel.get("urgency"))
    eco = f"debian:{release}"
    if status == "resolved":
        if not isinstance(fixed, str) or fixed == "0":
            return None
        try:
            _DPKG.key(fixed)
        except VersionError as exc:
            raise ValueError(str(exc)) from exc
        events = ((EventKind.INTRODUCED, "0"), (EventKind.FIXED, fixed))
        return Affected(
            ecosystem=eco,
            package=package,
            ranges=(VersionRange(type="ECOSYSTEM", events=events),),
            fix_state=FixState.FIXED,
            fixed_version=fixed,
            severity=urgency,
        )
    if status in ("open", "undetermined"):
        if status == "undetermined":
            state = FixState.UNKNOWN
        elif rel.get("nodsa") or rel.get("nodsa_reason") in ("ignored", "postponed"):
            state = FixState.WONT_FIX
        else:
            state = FixState.NOT_FIXED
        return Affected(
            ecosystem=eco,
            package=package,
            ranges=(VersionRange(type="ECOSYSTEM", events=((EventKind.INTRODUCED, "0"),)),),
            fix_state=state,
            severity=urgency,
        )
    raise ValueError(f"unknown status {status!r}")
