"""Red Hat CSAF VEX per-CVE documents (``security.access.redhat.com/data/csaf/v2/vex/``).

One document describes one CVE across every Red Hat product. Only the RPMs of Red Hat Enterprise
Linux itself are kept: a product whose platform CPE is ``cpe:/o:redhat:enterprise_linux:N`` or
``cpe:/a:redhat:enterprise_linux:N[::stream]`` becomes ecosystem ``redhat:N`` (UBI images are RHEL
N too). Layered products (OpenShift, Satellite, JBoss...), EUS/AUS/E4S/TUS streams
(``rhel_eus:9.0``...) and non-RPM components (containers, Maven) are not matched here.

- ``fixed``: the source RPM's NEVRA of the fix; the epoch is kept (``1:1.2-3``) when not 0. Several
  fixes of one package for one major release (the 9.2 z-stream and 9.3...) keep the highest: an
  image follows the newest minor release of its major release.
- ``known_affected``: affected, with the remediation's state: ``no_fix_planned`` (details "Will
  not fix", "Out of support scope") -> ``wont-fix``; ``none_available`` ("Affected", "Fix
  deferred") or no remediation -> ``not-fixed``.
- ``known_not_affected`` and ``under_investigation``: no entry.

Modular RPMs (a component ``nodejs:18/nodejs``, or a purl with ``rpmmod=nodejs:18:...``) are
keyed ``nodejs:18/nodejs``: the matcher looks an installed RPM up under that key only when its
``modularitylabel`` names the same module and stream (see ``matcher.target_for``).
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard
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
# [module:stream:version:context:]name-[epoch:]version-release (the arch cut off first)
_NEVRA = re.compile(
    r"^(?:(?P<mod>.+):)?(?P<name>[^:]+)-(?:(?P<epoch>\d+):)?(?P<version>[^-:]+)-(?P<release>[^-:]+)$"
)
_ARCH = re.compile(r"\.(src|noarch|x86_64|i686|aarch64|ppc64le|s390x|ppc64|s390|ia64)$")
_WONT_FIX = {"no_fix_planned"}


def is_vex(doc: object) -> TypeGuard[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("document"), dict):
        return False
    d = doc["document"]
    return d.get("category") == "csaf_vex" and "Red Hat" in str(
        (d.get("publisher") or {}).get("name", "") if isinstance(d.get("publisher"), dict) else ""
    )


def convert(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    try:
        return _convert(doc, where)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        return [], [Problem(where=where, message=f"malformed CSAF VEX document: {exc!r}"[:300])]


def _objects(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _products(tree: dict[str, Any]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Platform product ids -> ``redhat:N``, and component ids -> (name or key, product name)."""
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
            m = _RHEL_CPE.match(cpe)
            if m:
                platforms[pid] = f"redhat:{m.group(1)}"
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


def _convert(doc: dict[str, Any], where: str) -> tuple[list[Advisory], list[Problem]]:
    problems: list[Problem] = []
    raw_tree = doc.get("product_tree")
    tree: dict[str, Any] = raw_tree if isinstance(raw_tree, dict) else {}
    platforms, components = _products(tree)
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
        adv = _vulnerability(cve, vuln, full, components, severity, problems, here)
        if adv is not None:
            out.append(adv)
    if not out and not problems:
        problems.append(
            Problem(where=where, message="no Red Hat Enterprise Linux RPM in this document")
        )
    return out, problems


def _aggregate(document: Any) -> str | None:
    agg = document.get("aggregate_severity") if isinstance(document, dict) else None
    text = agg.get("text") if isinstance(agg, dict) else None
    return text.strip().lower() if isinstance(text, str) and text.strip() else None


def _vulnerability(
    cve: str,
    vuln: dict[str, Any],
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
    for state in ("fixed", "known_affected"):
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
            if state == "fixed":
                if version is None or not is_source:
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
        source="redhat-vex",
        summary=_summary(vuln),
        published=_text(vuln.get("release_date")),
        cvss=tuple(_cvss(vuln, problems, here)),
        references=(f"https://access.redhat.com/security/cve/{cve}",),
        affected=tuple(entries),
    )


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
        for key in ("cvss_v3", "cvss_v2"):
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
