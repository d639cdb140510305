"""SPDX 2.3 JSON: writer and reader.

One package per inventory package (purl as a PACKAGE-MANAGER external reference, licenses as a
declared license expression: SPDX ids as they are, anything else as a ``LicenseRef-`` with its
text in ``hasExtractedLicensingInfos``), one package for the image itself (the document
DESCRIBES it and it CONTAINS the rest) and one for the distro.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package
from stockade.scanning.sbom import common
from stockade.scanning.sbom.cyclonedx import package_from

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def _spdx_ref(prefix: str, text: str) -> str:
    return f"SPDXRef-{prefix}-{_UNSAFE.sub('-', text).strip('-')[:80]}"


class _Licenses:
    """Turns free-form license strings into SPDX expressions, collecting LicenseRefs."""

    def __init__(self) -> None:
        self.extracted: dict[str, str] = {}

    def ref(self, text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        ref = f"LicenseRef-{_UNSAFE.sub('-', text).strip('-')[:40]}-{digest}"
        self.extracted[ref] = text
        return ref

    def term(self, text: str) -> str:
        text = text.strip()
        if common.is_expression(text) and common.expression_is_spdx(text):
            return f"({text})"
        sid = common.spdx_id(text.rstrip("+"))
        if sid:
            return sid + ("+" if text.endswith("+") and not sid.endswith("+") else "")
        return self.ref(text)

    def declared(self, pkg: Package) -> str:
        terms = [self.term(t) for t in pkg.licenses if t.strip()]
        if not terms:
            return "NOASSERTION"
        if len(terms) == 1:
            t = terms[0]
            return t[1:-1] if t.startswith("(") and t.endswith(")") else t
        return " AND ".join(dict.fromkeys(terms))


def to_dict(inv: Inventory, *, now: datetime | None = None) -> dict[str, Any]:
    lic = _Licenses()
    refs = common.unique_ids(inv.packages)
    root_ref = "SPDXRef-DocumentRoot-Image"
    root: dict[str, Any] = {
        "SPDXID": root_ref,
        "name": common.image_name(inv),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER" if inv.image else "FILE",
    }
    if common.image_version(inv):
        root["versionInfo"] = common.image_version(inv)
        if root["versionInfo"].startswith("sha256:"):
            root["checksums"] = [{"algorithm": "SHA256", "checksumValue": root["versionInfo"][7:]}]
    packages: list[dict[str, Any]] = [root]
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": root_ref,
        }
    ]
    for pkg, ref in zip(inv.packages, refs, strict=True):
        spdx_id = _spdx_ref("Package", f"{pkg.type}-{pkg.name}-{ref}")
        entry: dict[str, Any] = {
            "SPDXID": spdx_id,
            "name": pkg.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": lic.declared(pkg),
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
        }
        if pkg.version:
            entry["versionInfo"] = pkg.version
        if pkg.locations:
            entry["sourceInfo"] = f"acquired package info from {pkg.type} evidence: " + ", ".join(
                pkg.locations
            )
        if pkg.source_name and pkg.source_name != pkg.name:
            entry["comment"] = (
                f"source package: {pkg.source_name} {pkg.source_version or ''}".strip()
            )
        if pkg.purl:
            entry["externalRefs"] = [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": pkg.purl,
                }
            ]
        packages.append(entry)
        relationships.append(
            {
                "spdxElementId": root_ref,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": spdx_id,
            }
        )
    if inv.distro is not None:
        d = inv.distro
        os_ref = _spdx_ref("OperatingSystem", f"{d.id}-{d.version_id}")
        packages.append(
            {
                "SPDXID": os_ref,
                "name": d.id,
                "versionInfo": d.version_id,
                "description": d.pretty_name or d.name,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "primaryPackagePurpose": "OPERATING-SYSTEM",
            }
        )
        relationships.append(
            {
                "spdxElementId": root_ref,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": os_ref,
            }
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = common.image_name(inv)
    namespace = f"https://stockade.dev/spdx/{_UNSAFE.sub('-', name).strip('-')}-{uuid.uuid4()}"
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": namespace,
        "creationInfo": {
            "created": stamp,
            "creators": [f"Tool: {common.TOOL}-{common.TOOL_VERSION}", "Organization: Stockade"],
        },
        "packages": packages,
        "relationships": relationships,
    }
    if lic.extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "extractedText": text, "name": text}
            for ref, text in sorted(lic.extracted.items())
        ]
    return doc


def write(inv: Inventory) -> str:
    return json.dumps(to_dict(inv), indent=2) + "\n"


# --- reading ------------------------------------------------------------------------------


def _purl(pkg: dict[str, Any]) -> str:
    for ref in common.items(pkg.get("externalRefs")):
        if isinstance(ref, dict) and ref.get("referenceType") == "purl":
            loc = ref.get("referenceLocator")
            if isinstance(loc, str):
                return loc
    return ""


def _licenses(pkg: dict[str, Any], extracted: dict[str, str]) -> tuple[str, ...]:
    for key in ("licenseDeclared", "licenseConcluded"):
        value = pkg.get(key)
        if isinstance(value, str) and value not in ("NOASSERTION", "NONE", ""):
            if value in extracted:
                return (extracted[value],)
            return (value,)
    return ()


def from_dict(doc: dict[str, Any]) -> Inventory:
    extracted = {
        e["licenseId"]: common.text(e.get("extractedText")) or e["licenseId"]
        for e in common.items(doc.get("hasExtractedLicensingInfos"))
        if isinstance(e, dict) and isinstance(e.get("licenseId"), str)
    }
    described = {
        common.text(r.get("relatedSpdxElement"))
        for r in common.items(doc.get("relationships"))
        if isinstance(r, dict) and r.get("relationshipType") == "DESCRIBES"
    }
    described |= set(x for x in common.items(doc.get("documentDescribes")) if isinstance(x, str))
    packages: list[Package] = []
    distro: Distro | None = None
    root_name = common.text(doc.get("name"))
    for raw in common.items(doc.get("packages")):
        if not isinstance(raw, dict):
            continue
        name = common.text(raw.get("name"))
        version = common.text(raw.get("versionInfo"))
        purpose = raw.get("primaryPackagePurpose")
        if purpose == "OPERATING-SYSTEM":
            if distro is None and name:
                distro = Distro(
                    id=name.lower(),
                    version_id=version,
                    pretty_name=str(raw.get("description") or ""),
                )
            continue
        purl = _purl(raw)
        if common.text(raw.get("SPDXID")) in described and not purl:
            root_name = name or root_name
            continue
        source = common.text(raw.get("sourceInfo"))
        locations = (
            tuple(x.strip() for x in source.partition(": ")[2].split(",") if x.strip())
            if ": " in source
            else ()
        )
        pkg = package_from(
            name=name,
            version=version,
            purl=purl,
            licenses=_licenses(raw, extracted),
            type_hint=None,
            locations=locations,
            extra={},
        )
        if pkg is not None:
            packages.append(pkg)
    image = ImageInfo(reference=root_name, name=root_name or None)
    return Inventory(source=root_name, image=image, distro=distro, packages=tuple(packages))
