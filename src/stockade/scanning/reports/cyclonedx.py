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
from stockade.scanning.sbom import cyclonedx as sbom_cyclonedx

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
    """The SBOM of the scanned inventory (``sbom.cyclonedx``: the one CycloneDX writer, which the
    reader reads back whole: layers, source packages, locations) plus the vulnerabilities."""
    inv = report.inventory
    doc = sbom_cyclonedx.to_dict(inv, now=report.scanned_at)
    refs = {
        _key_of(p): c["bom-ref"]
        for p, c in zip(inv.packages, doc["components"], strict=False)
        if c.get("type") == "library"
    }
    doc["serialNumber"] = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, _serial_seed(report)))
    metadata = doc["metadata"]
    metadata["tools"]["components"][0]["version"] = report.tool_version or "0"
    metadata["properties"] = _coverage_properties(report)
    if inv.distro:
        root = metadata["component"]
        root.setdefault("properties", []).append(
            {"name": "stockade:distro", "value": f"{inv.distro.id} {inv.distro.version_id}"}
        )
    doc["vulnerabilities"] = _vulnerabilities(report, refs)
    return doc


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


def package_key(purl: str, type_: str, name: str, version: str, location: str) -> tuple[str, ...]:
    return (purl, location) if purl else (type_, name, version, location)


def _key_of(p: Package) -> tuple[str, ...]:
    return package_key(p.purl, p.type, p.name, p.version, p.locations[0] if p.locations else "")


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
