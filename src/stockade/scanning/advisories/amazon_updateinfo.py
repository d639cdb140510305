"""Amazon Linux ALAS advisories from a repository's ``updateinfo.xml`` (plain or ``.gz``).

Shape (the yum/dnf updateinfo format)::

    <updates><update type="security"><id>ALAS2023-2023-001</id><severity>Important</severity>
      <references><reference type="cve" id="CVE-2022-24903"/></references>
      <pkglist><collection short="amazon-linux-2023"><package name="rsyslog" epoch="0"
        version="8.2204.0" release="3.amzn2023.0.2" arch="x86_64"/></collection></pkglist>
    </update></updates>

The release comes from the advisory id: ``ALAS2023-`` -> ``amazon:2023``, ``ALAS2-`` (and AL2
extras topics such as ``ALAS2GOLANG1.19-``) -> ``amazon:2``, ``ALAS2022-`` -> ``amazon:2022``,
``ALAS-`` -> ``amazon:1``. updateinfo names **binary** packages, so ALAS entries are keyed by the
binary package name and matched against the installed RPM's own name and version (see
``matcher.target_for``). Every listed package is affected below its fixed NEVRA (the epoch kept
when it is not 0); updateinfo lists fixes only, so an unfixed issue is not in it. The ALAS id is the
record's id and its CVEs its upstream ids: a finding carries the CVE with the ALAS as an alias.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    EventKind,
    FixState,
    Problem,
    VersionRange,
)
from stockade.scanning.versions import SCHEMES, VersionError

_RPM = SCHEMES["rpm"]
_ID = re.compile(r"^ALAS(?P<release>2023|2022|2)?(?P<topic>[A-Z][A-Z0-9.]*)?-\d{4}-\d+$")
_MAX_UPDATES = 200_000


def convert_xml(data: bytes, where: str) -> tuple[list[Advisory], list[Problem]]:
    """Every security update of one updateinfo document (problems for the bad ones)."""
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        return [], [Problem(where=where, message="XML with a DOCTYPE or entities is refused")]
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return [], [Problem(where=where, message=f"malformed XML: {exc}")]
    if root.tag != "updates":
        return [], [Problem(where=where, message="not a recognised advisory format; skipped")]
    out: list[Advisory] = []
    problems: list[Problem] = []
    for i, update in enumerate(root.iter("update")):
        if i >= _MAX_UPDATES:
            problems.append(Problem(where=where, message=f"more than {_MAX_UPDATES} updates"))
            break
        uid = (update.findtext("id") or "").strip()
        here = f"{where}#{uid or f'update[{i}]'}"
        if update.get("type", "security") != "security":
            continue
        try:
            adv = _update(uid, update)
        except (ValueError, VersionError) as exc:
            problems.append(Problem(where=here, message=str(exc)[:300]))
            continue
        out.append(adv)
    if not out and not problems:
        problems.append(Problem(where=where, message="no security update in this updateinfo"))
    return out, problems


def _release(uid: str) -> str:
    m = _ID.match(uid)
    if m is None:
        raise ValueError(f"not an Amazon Linux advisory id: {uid[:80]!r}")
    return f"amazon:{m.group('release') or '1'}"


def _update(uid: str, update: ET.Element) -> Advisory:
    eco = _release(uid)
    fixed: dict[str, str] = {}
    for pkg in update.iter("package"):
        name, version, release = pkg.get("name"), pkg.get("version"), pkg.get("release")
        if not name or not version or not release:
            raise ValueError("package without name, version and release")
        epoch = pkg.get("epoch") or "0"
        if not epoch.isdigit():
            raise ValueError(f"bad epoch {epoch[:20]!r} for {name[:80]}")
        evr = f"{version}-{release}" if epoch == "0" else f"{int(epoch)}:{version}-{release}"
        key = _RPM.key(evr)  # raises VersionError for a bad version
        if name not in fixed or key > _RPM.key(fixed[name]):
            fixed[name] = evr
    if not fixed:
        raise ValueError("update lists no package")
    cves = sorted(
        {
            ref.get("id", "")
            for ref in update.iter("reference")
            if ref.get("type") == "cve" and ref.get("id", "").startswith("CVE-")
        }
    )
    severity = (update.findtext("severity") or "").strip().lower() or None
    issued = update.find("issued")
    return Advisory(
        id=uid,
        source="amazon-updateinfo",
        upstream=tuple(cves),
        summary=(update.findtext("title") or "").strip()[:500],
        published=(issued.get("date") or "")[:40] or None if issued is not None else None,
        severity=severity,
        references=tuple(
            ref.get("href", "") for ref in update.iter("reference") if ref.get("href")
        )[:20],
        affected=tuple(
            Affected(
                ecosystem=eco,
                package=name,
                ranges=(
                    VersionRange(
                        type="ECOSYSTEM",
                        events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, evr)),
                    ),
                ),
                fix_state=FixState.FIXED,
                fixed_version=evr,
                severity=severity,
            )
            for name, evr in sorted(fixed.items())
        ),
    )
