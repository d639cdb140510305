"""CycloneDX 1.5 JSON: the image's components and its vulnerabilities in one BOM.

Every vulnerability lists the components it ``affects`` by their ``bom-ref``; suppressed findings
carry an ``analysis`` (VEX ``not_affected`` becomes ``not_affected`` with the mapped justification,
``fixed`` becomes ``resolved``), so a consumer sees the same decisions as the gate.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from stockade.model import Severity
from stockade.scanning.gate import GatedFinding
from stockade.scanning.interface import Package
from stockade.scanning.results import ScanReport, vuln

SPEC_VERSION = "1.5"

_RATING = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.NEGLIGIBLE: "info",
    Severity.UNKNOWN: "unknown",
}
# OpenVEX justifications mapped onto CycloneDX's impact-analysis justifications.
_JUSTIFICATION = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
_STATE = {
    "not_affected": "not_affected",
    "fixed": "resolved",
    "under_investigation": "in_triage",
    "affected": "exploitable",
}


def render_cyclonedx(report: ScanReport) -> str:
    return json.dumps(cyclonedx_dict(report), indent=2, ensure_ascii=False)


def cyclonedx_dict(report: ScanReport) -> dict[str, Any]:
    inv = report.inventory
    refs, components = _components(inv.packages)
    root_ref = "stockade:target"
    vulns = _vulnerabilities(report, refs)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, _serial_seed(report))),
        "version": 1,
        "metadata": {
            "timestamp": report.scanned_at.replace(microsecond=0).isoformat(),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "stockade",
                        "version": report.tool_version or "0",
                    }
                ]
            },
            "component": _root_component(report, root_ref),
            "properties": _coverage_properties(report),
        },
        "components": components,
        "dependencies": [{"ref": root_ref, "dependsOn": [c["bom-ref"] for c in components]}],
        "vulnerabilities": vulns,
    }


def _coverage_properties(report: ScanReport) -> list[dict[str, str]]:
    """Whether the vulnerability list covers every component: an empty list means nothing found
    only where ``stockade:complete`` is true."""
    props = [{"name": "stockade:complete", "value": str(not report.incomplete).lower()}]
    props += [{"name": "stockade:unchecked", "value": line} for line in report.coverage_lines()]
    return props


def _serial_seed(report: ScanReport) -> str:
    inv = report.inventory
    digest = inv.image.manifest_digest if inv.image and inv.image.manifest_digest else ""
    return f"stockade:{inv.source}:{digest}:{report.scanned_at.isoformat()}"


def _root_component(report: ScanReport, ref: str) -> dict[str, Any]:
    inv = report.inventory
    img = inv.image
    comp: dict[str, Any] = {
        "bom-ref": ref,
        "type": "container" if img else "file",
        "name": inv.source,
    }
    if img:
        comp["name"] = img.name or inv.source
        version = img.manifest_digest or img.tag
        if version:
            comp["version"] = version
    if inv.distro:
        comp["properties"] = [
            {"name": "stockade:distro", "value": f"{inv.distro.id} {inv.distro.version_id}"}
        ]
    return comp


def package_key(purl: str, type_: str, name: str, version: str, location: str) -> tuple[str, ...]:
    return (purl, location) if purl else (type_, name, version, location)


def _components(
    packages: tuple[Package, ...],
) -> tuple[dict[tuple[str, ...], str], list[dict[str, Any]]]:
    refs: dict[tuple[str, ...], str] = {}
    used: set[str] = set()
    out = []
    for i, p in enumerate(packages):
        loc = p.locations[0] if p.locations else ""
        key = package_key(p.purl, p.type, p.name, p.version, loc)
        if key in refs:
            continue
        ref = p.purl or f"stockade:pkg:{p.type}/{p.name}@{p.version}"
        if ref in used:
            ref = f"{ref}#{i}"
        used.add(ref)
        refs[key] = ref
        comp: dict[str, Any] = {
            "bom-ref": ref,
            "type": "library",
            "name": p.name,
            "version": p.version,
        }
        if p.purl:
            comp["purl"] = p.purl
        if p.licenses:
            comp["licenses"] = [{"license": {"name": lic}} for lic in p.licenses]
        props = [{"name": "stockade:package:type", "value": p.type}]
        props += [{"name": "stockade:location:path", "value": loc} for loc in p.locations]
        if p.layer:
            props.append({"name": "stockade:layer:diff_id", "value": p.layer})
        if p.source_name:
            props.append({"name": "stockade:package:source", "value": p.source_name})
        comp["properties"] = props
        out.append(comp)
    return refs, out


def _component_ref(g: GatedFinding, refs: dict[tuple[str, ...], str]) -> str | None:
    d = vuln(g)
    if d is None:
        return None
    loc = d.locations[0] if d.locations else ""
    key = package_key(d.purl, d.package_type, d.package, d.installed_version, loc)
    if key in refs:
        return refs[key]
    # The matcher may not carry the evidence path: fall back to any component with the same purl.
    for k, ref in refs.items():
        if d.purl and k[0] == d.purl:
            return ref
        if not d.purl and k[:3] == (d.package_type, d.package, d.installed_version):
            return ref
    return None


def _analysis(g: GatedFinding) -> dict[str, Any] | None:
    sup = g.suppression
    if sup is not None and sup.by == "vex" and sup.vex_status:
        out: dict[str, Any] = {"state": _STATE[sup.vex_status], "detail": sup.reason}
        if sup.justification in _JUSTIFICATION:
            out["justification"] = _JUSTIFICATION[sup.justification]
        return out
    if sup is not None:
        return {"detail": f"suppressed by {sup.by}: {sup.reason}"}
    if g.vex_status in _STATE:
        return {"state": _STATE[g.vex_status], "detail": g.vex_note or ""}
    return None


def _vulnerabilities(report: ScanReport, refs: dict[tuple[str, ...], str]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for g in report.ordered():
        ref = _component_ref(g, refs)
        if ref is None:
            continue
        analysis = _analysis(g)
        key = (g.finding.id, json.dumps(analysis, sort_keys=True))
        entry = grouped.get(key)
        if entry is None:
            entry = _vulnerability(g, len(grouped), analysis)
            grouped[key] = entry
        d = vuln(g)
        assert d is not None
        entry["affects"].append(
            {"ref": ref, "versions": [{"version": d.installed_version, "status": "affected"}]}
        )
    return list(grouped.values())


def _vulnerability(g: GatedFinding, n: int, analysis: dict[str, Any] | None) -> dict[str, Any]:
    f = g.finding
    d = vuln(g)
    assert d is not None
    rating: dict[str, Any] = {"severity": _RATING[f.severity]}
    if d.cvss_score is not None:
        rating["score"] = float(d.cvss_score)
    if d.cvss_vector:
        rating["vector"] = d.cvss_vector
        rating["method"] = _method(d.cvss_vector)
    entry: dict[str, Any] = {
        "bom-ref": f"stockade:vuln:{n}:{f.id}",
        "id": f.id,
        "source": {"name": d.data_source or "stockade"},
        "ratings": [rating],
        "description": f.title or f.id,
        "affects": [],
    }
    if d.urls:
        entry["source"]["url"] = d.urls[0]
        entry["advisories"] = [{"url": u} for u in d.urls]
    aliases = [a for a in d.aliases if a != f.id]
    if aliases:
        entry["references"] = [{"id": a, "source": {"name": _alias_source(a)}} for a in aliases]
    if d.fixed_version:
        entry["recommendation"] = f"Upgrade {d.package} to {d.fixed_version} or later."
    if analysis is not None:
        entry["analysis"] = analysis
    return entry


def _method(vector: str) -> str:
    if vector.startswith("CVSS:4"):
        return "CVSSv4"
    if vector.startswith("CVSS:3.1"):
        return "CVSSv31"
    if vector.startswith("CVSS:3"):
        return "CVSSv3"
    if vector.startswith("AV:") or vector.startswith("(AV:"):
        return "CVSSv2"
    return "other"


def _alias_source(alias: str) -> str:
    prefix = alias.split("-", 1)[0].upper()
    return {
        "CVE": "NVD",
        "GHSA": "GitHub",
        "PYSEC": "PyPA",
        "GO": "Go",
        "DSA": "Debian",
        "DLA": "Debian",
    }.get(prefix, prefix or "unknown")
