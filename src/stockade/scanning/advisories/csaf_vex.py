"""CSAF VEX per-CVE documents of Red Hat and SUSE to normalized advisories.

One document describes one CVE across every product of its vendor. Only the RPMs of the
distributions an image can be built on are kept; the vendor profile says which platform CPEs count
and how packages are keyed:

- **Red Hat** (``security.access.redhat.com/data/csaf/v2/vex/``): a platform CPE
  ``cpe:/o:redhat:enterprise_linux:N`` or ``cpe:/a:redhat:enterprise_linux:N[::stream]`` becomes
  ``redhat:N`` (UBI images are RHEL N too). Layered products (OpenShift, Satellite, JBoss...),
  EUS/AUS/E4S/TUS streams (``rhel_eus:9.0``...) and non-RPM components are not read. Packages are
  keyed by **source** RPM, the fix read from the ``.src`` NEVRA.
- **SUSE** (``ftp.suse.com/pub/projects/security/csaf-vex/``): ``cpe:/o:suse:sles:15:sp5`` and the
  SLE 15 SP5 modules (``sle-module-basesystem:15:sp5``...) become ``sles:15.5``;
  ``sle-micro:5.5`` -> ``sle-micro:5.5``, ``sle-micro-rancher:5.4`` -> ``sle-micro-rancher:5.4``,
  ``sl-micro:6.0`` -> ``sl-micro:6.0``,
  ``cpe:/o:opensuse:leap:15.5`` -> ``opensuse-leap:15.5``, ``leap-micro:5.5`` ->
  ``opensuse-leap-micro:5.5``. LTSS, SAP, Desktop and other products are not read. SUSE lists
  **binary** RPMs, so packages are keyed by binary name; ``recommended`` (SUSE's status for the
  fixed package) counts as ``fixed``.

For both:

- ``fixed``: affected below the fix's ``[epoch:]version-release`` (the epoch kept when not 0).
  Several fixes of one package for one release (Red Hat's 9.2 z-stream and 9.3...) keep the
  highest: an image follows the newest minor release of its major release.
- ``known_affected``: affected, with the remediation's state: ``no_fix_planned`` (details "Will
  not fix", "Out of support scope") -> ``wont-fix``; ``none_available`` ("Affected", "Fix
  deferred") or no remediation -> ``not-fixed``.
- ``known_not_affected`` and ``under_investigation``: no entry.

Red Hat modular RPMs (a component ``nodejs:18/nodejs``, or a purl with ``rpmmod=nodejs:18:...``)
are keyed ``nodejs:18/nodejs``: the matcher looks an installed RPM up under that key only when its
``modularitylabel`` names the same module and stream (see ``matcher.target_for``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from stockade.scanning.advisories.cvss import CvssError, parse_vector
from stockade.scanning.advisories.model import (
    Advisory,
    Affected,
    Cvss,
    EventKind,
    FixState,
    Problem,
    VersionRange,
)
from stockade.scanning.versions import SCHEMES, VersionError

_RPM = SCHEMES["rpm"]
_RHEL_CPE = re.compile(r"^cpe:/[ao]:redhat:enterprise_linux:(\d+)(?:[:.]|$)")
_SLES_CPE = re.compile(r"^cpe:/o:suse:(?:sles|sle-module-[a-z0-9-]+):(\d+)(?::sp(\d+))?$")
_SUSE_OTHER_CPE = re.compile(
    r"^cpe:/o:(?:suse:(?P<micro>sle-micro|sle-micro-rancher|sl-micro)"
    r"|opensuse:(?P<leap>leap|leap-micro))"
    r":(?P<release>\d+\.\d+)$"
)
# [module:stream:version:context:]name-[epoch:]version-release (the arch cut off first)
_NEVRA = re.compile(
    r"^(?:(?P<mod>.+):)?(?P<name>[^:]+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-:]+)$"
)
_ARCH = re.compile(r"\.(src|noarch|x86_64|i686|aarch64|ppc64le|s390x|ppc64|s390|ia64)$")
_WONT_FIX = {"no_fix_planned"}


def _rhel(cpe: str) -> str | None:
    m = _RHEL_CPE.match(cpe)
    return f"redhat:{m.group(1)}" if m else None


def _suse(cpe: str) -> str | None:
    m = _SLES_CPE.match(cpe)
    if m:
        return f"sles:{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
    m = _SUSE_OTHER_CPE.match(cpe)
    if m is None:
        return None
    if m.group("micro"):
        return f"{m.group('micro')}:{m.group('release')}"
    return f"opensuse-{m.group('leap')}:{m.group('release')}"


@dataclass(frozen=True, slots=True)
class Vendor:
    source: str  # the data source and import kind: "redhat-vex", "suse-vex"
    publisher: str  # what document.publisher.name contains
    platform: Callable[[str], str | None]  # a platform CPE -> ecosystem, or None (not read)
    by_source: bool  # packages keyed by source RPM (Red Hat) or binary RPM (SUSE)
    fixed_states: tuple[str, ...]


VENDORS = (
    Vendor("redhat-vex", "Red Hat", _rhel, by_source=True, fixed_states=("fixed",)),
    Vendor("suse-vex", "SUSE", _suse, by_source=False, fixed_states=("fixed", "recommended")),
)


def vendor_of(doc: object) -> Vendor | None:
    """The vendor profile of a CSAF VEX document, or None when it is not one we read."""
    if not isinstance(doc, dict) or not isinstance(doc.get("document"), dict):
        return None
    d = doc["document"]
    publisher = d.get("publisher") if isinstance(d.get("publisher"), dict) else {}
    name = publisher.get("name")
    if d.get("category") != "csaf_vex" or not isinstance(name, str):
        return None
    return next((v for v in VENDORS if v.publisher in name), None)


def convert(
    doc: dict[str, Any], vendor: Vendor, where: str
) -> tuple[list[Advisory], list[Problem]]:
    try:
        return _convert(doc, vendor, where)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        return [], [Problem(where=where, message=f"malformed CSAF VEX document: {exc!r}"[:300])]


def _objects(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _products(
    tree: dict[str, Any], vendor: Vendor
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Platform product ids -> ecosystem, and component ids -> (purl, product name)."""
    platforms: dict[str, str] = {}
    components: dict[str, tuple[str, str]] = {}
    stack = list(_objects(tree.get("branches")))
    seen = 0
    while stack:
        seen += 1
        if seen > 1_000_000:
            raise ValueError("product tree too large")
        b = stack.pop()
        stack.extend(_objects(b.get("branches")))
        product = b.get("product")
        if not isinstance(product, dict) or not isinstance(product.get("product_id"), str):
            continue
        helper = product.get("product_identification_helper")
        helper = helper if isinstance(helper, dict) else {}
        pid = product["product_id"]
        cpe = helper.get("cpe")
        if b.get("category") == "product_name" and isinstance(cpe, str):
            eco = vendor.platform(cpe)
            if eco:
                platforms[pid] = eco
        elif b.get("category") == "product_version":
            purl = helper.get("purl")
            components[pid] = (purl if isinstance(purl, str) else "", str(b.get("name") or pid))
    return platforms, components


def _component(purl: str, name: str) -> tuple[str, str | None, bool] | None:
    """(package key, version or None, is a source RPM) of an RPM component; None otherwise.

    The purl says it best (``pkg:rpm/redhat/nodejs@20.16.0-1.module+el9?arch=src&epoch=1&
    rpmmod=nodejs:20:...``); without one the product name is read (``curl-0:7.76.1-26.el9.src``,
    ``samba``, ``go-toolset:rhel8/go-toolset``).
    """
    if purl:
        if not purl.startswith("pkg:rpm/"):
            return None
        p = urlparse(purl)
        q = parse_qs(p.query)
        path, _, version = unquote(p.path).partition("@")
        pkg_name = path.rsplit("/", 1)[-1]
        arch: str | None = (q.get("arch") or [""])[0] or None
        rpmmod = (q.get("rpmmod") or [""])[0]
        module = ":".join(rpmmod.split(":")[:2]) if rpmmod else None
        epoch = (q.get("epoch") or ["0"])[0]
        if "-" not in version:
            version = ""  # an unfixed module component names its stream here: "@rhel8"
        if version and epoch != "0":
            version = f"{epoch}:{version}"
        if module is None and "/" in name and not version:
            module = ":".join(name.partition("/")[0].split(":")[:2])
        key = f"{module}/{pkg_name}" if module else pkg_name
        return key, version or None, arch in (None, "src")
    m_arch = _ARCH.search(name)
    if m_arch is None:  # an unfixed component: "samba" or "go-toolset:rhel8/go-toolset"
        mod, slash, pkg = name.rpartition("/")
        return (f"{':'.join(mod.split(':')[:2])}/{pkg}" if slash else name), None, True
    m = _NEVRA.match(name[: m_arch.start()])
    if m is None:
        raise ValueError(f"cannot read the NEVRA {name[:200]!r}")
    version = f"{m.group('version')}-{m.group('release')}"
    if (m.group("epoch") or "0") != "0":
        version = f"{m.group('epoch')}:{version}"
    mod = m.group("mod")
    key = f"{':'.join(mod.split(':')[:2])}/{m.group('name')}" if mod else m.group("name")
    return key, version, m_arch.group(1) == "src"


def _convert(
    doc: dict[str, Any], vendor: Vendor, where: str
) -> tuple[list[Advisory], list[Problem]]:
    problems: list[Problem] = []
    raw_tree = doc.get("product_tree")
    tree: dict[str, Any] = raw_tree if isinstance(raw_tree, dict) else {}
    platforms, components = _products(tree, vendor)
    # full product id -> (ecosystem, component id)
    full: dict[str, tuple[str, str]] = {}
    for rel in _objects(tree.get("relationships")):
        fpn = rel.get("full_product_name")
        plat = rel.get("relates_to_product_reference")
        comp = rel.get("product_reference")
        if isinstance(fpn, dict) and plat in platforms and isinstance(comp, str):
            pid = fpn.get("product_id")
            if isinstance(pid, str):
                full[pid] = (platforms[plat], comp)
    severity = _aggregate(doc.get("document"))
    out: list[Advisory] = []
    for i, vuln in enumerate(_objects(doc.get("vulnerabilities"))):
        cve = vuln.get("cve")
        here = f"{where}#{cve or f'vulnerabilities[{i}]'}"
        if not isinstance(cve, str) or not cve:
            problems.append(Problem(where=here, message="vulnerability without a cve id; skipped"))
            continue
        adv = _vulnerability(cve, vuln, vendor, full, components, severity, problems, here)
        if adv is not None:
            out.append(adv)
    if not out and not problems:
        problems.append(
            Problem(where=where, message="no RPM of a distribution read here in this document")
        )
    return out, problems


def _aggregate(document: Any) -> str | None:
    agg = document.get("aggregate_severity") if isinstance(document, dict) else None
    text = agg.get("text") if isinstance(agg, dict) else None
    return text.strip().lower() if isinstance(text, str) and text.strip() else None


def _vulnerability(
    cve: str,
    vuln: dict[str, Any],
    vendor: Vendor,
    full: dict[str, tuple[str, str]],
    components: dict[str, tuple[str, str]],
    doc_severity: str | None,
    problems: list[Problem],
    here: str,
) -> Advisory | None:
    raw_status = vuln.get("product_status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    remediation: dict[str, str] = {}
    for rem in _objects(vuln.get("remediations")):
        for pid in _strings(rem.get("product_ids")):
            remediation[pid] = str(rem.get("category") or "")
    impact: dict[str, str] = {}
    for threat in _objects(vuln.get("threats")):
        if threat.get("category") == "impact" and isinstance(threat.get("details"), str):
            for pid in _strings(threat.get("product_ids")):
                impact[pid] = threat["details"].strip().lower()
    fixed: dict[tuple[str, str], tuple[str, str | None]] = {}
    affected: dict[tuple[str, str], tuple[FixState, str | None]] = {}
    for state in (*vendor.fixed_states, "known_affected"):
        for pid in _strings(status.get(state)):
            if pid not in full:
                continue
            eco, comp = full[pid]
            purl, name = components.get(comp, ("", comp))
            try:
                parsed = _component(purl, name)
            except ValueError as exc:
                problems.append(Problem(where=here, message=str(exc)))
                continue
            if parsed is None:
                continue
            key, version, is_source = parsed
            if state != "known_affected":
                if version is None or (vendor.by_source and not is_source):
                    continue  # binary RPMs repeat the source RPM's fix
                try:
                    _RPM.key(version)
                except VersionError as exc:
                    problems.append(Problem(where=here, message=str(exc)))
                    continue
                old = fixed.get((eco, key))
                if old is None or _RPM.key(version) > _RPM.key(old[0]):
                    fixed[(eco, key)] = (version, impact.get(pid))
            else:
                fix_state = (
                    FixState.WONT_FIX if remediation.get(pid) in _WONT_FIX else FixState.NOT_FIXED
                )
                affected[(eco, key)] = (fix_state, impact.get(pid))
    entries: list[Affected] = []
    for (eco, key), (version, sev) in sorted(fixed.items()):
        entries.append(
            Affected(
                ecosystem=eco,
                package=key,
                ranges=(
                    VersionRange(
                        type="ECOSYSTEM",
                        events=((EventKind.INTRODUCED, "0"), (EventKind.FIXED, version)),
                    ),
                ),
                fix_state=FixState.FIXED,
                fixed_version=version,
                severity=sev or doc_severity,
            )
        )
    for (eco, key), (fix_state, sev) in sorted(affected.items()):
        if (eco, key) in fixed:
            continue  # an older stream still affected; the newest one has the fix
        entries.append(
            Affected(
                ecosystem=eco,
                package=key,
                ranges=(VersionRange(type="ECOSYSTEM", events=((EventKind.INTRODUCED, "0"),)),),
                fix_state=fix_state,
                severity=sev or doc_severity,
            )
        )
    if not entries:
        return None
    return Advisory(
        id=cve,
        source=vendor.source,
        summary=_summary(vuln),
        published=_text(vuln.get("release_date")),
        cvss=tuple(_cvss(vuln, problems, here)),
        references=tuple(_references(vuln))[:10],
        affected=tuple(entries),
    )


def _references(vuln: dict[str, Any]) -> list[str]:
    return [r["url"] for r in _objects(vuln.get("references")) if isinstance(r.get("url"), str)]


def _text(value: Any) -> str | None:
    return value[:40] if isinstance(value, str) else None


def _summary(vuln: dict[str, Any]) -> str:
    title = vuln.get("title")
    if isinstance(title, str) and title:
        return title[:500]
    for note in _objects(vuln.get("notes")):
        text = note.get("text")
        if note.get("category") == "description" and isinstance(text, str):
            return text[:500]
    return ""


def _cvss(vuln: dict[str, Any], problems: list[Problem], here: str) -> list[Cvss]:
    vectors: list[str] = []
    for score in _objects(vuln.get("scores")):
        for key in ("cvss_v4", "cvss_v3", "cvss_v2"):  # cvss_v4: CSAF 2.1
            block = score.get(key)
            vector = block.get("vectorString") if isinstance(block, dict) else None
            if isinstance(vector, str) and vector not in vectors:
                vectors.append(vector)
    out = []
    for vector in vectors[:4]:
        try:
            out.append(parse_vector(vector))
        except CvssError as exc:
            problems.append(Problem(where=here, message=f"bad CVSS vector {vector!r}: {exc}"))
    return out
