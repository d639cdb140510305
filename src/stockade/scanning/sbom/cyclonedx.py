"""CycloneDX 1.5 JSON: writer and reader.

Components carry the purl, licenses (SPDX ids, names, or one expression, as the schema allows),
a stable ``bom-ref`` and ``stockade:*`` properties for what CycloneDX has no field for (package
type, locations, layer, source package). The distro is an ``operating-system`` component. The
reader also understands syft's ``syft:*`` properties.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stockade.scanning.catalogers import purl as purls
from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package
from stockade.scanning.sbom import common

SPEC_VERSION = "1.5"


def _licenses(pkg: Package) -> list[dict[str, Any]]:
    if len(pkg.licenses) == 1 and common.is_expression(pkg.licenses[0]):
        text = pkg.licenses[0]
        if common.expression_is_spdx(text):
            return [{"expression": text}]
        return [{"license": {"name": text}}]
    out = []
    for text in pkg.licenses:
        sid = common.spdx_id(text)
        out.append({"license": {"id": sid}} if sid else {"license": {"name": text}})
    return out


def _properties(pkg: Package) -> list[dict[str, str]]:
    props = [{"name": "stockade:package:type", "value": pkg.type}]
    for i, loc in enumerate(pkg.locations):
        props.append({"name": f"stockade:location:{i}:path", "value": loc})
    for name, value in (
        ("stockade:layer", pkg.layer),
        ("stockade:source:name", pkg.source_name),
        ("stockade:source:version", pkg.source_version),
        ("stockade:arch", pkg.arch),
    ):
        if value:
            props.append({"name": name, "value": value})
    props.extend({"name": f"stockade:metadata:{k}", "value": v} for k, v in pkg.metadata if v)
    return props


def to_dict(inv: Inventory, *, now: datetime | None = None) -> dict[str, Any]:
    refs = common.unique_ids(inv.packages)
    components: list[dict[str, Any]] = []
    for pkg, ref in zip(inv.packages, refs, strict=True):
        comp: dict[str, Any] = {"bom-ref": f"pkg:{ref}", "type": "library", "name": pkg.name}
        if pkg.meta("maven-group"):
            comp["group"] = pkg.meta("maven-group")
        if pkg.version:
            comp["version"] = pkg.version
        lic = _licenses(pkg)
        if lic:
            comp["licenses"] = lic
        if pkg.purl:
            comp["purl"] = pkg.purl
        comp["properties"] = _properties(pkg)
        components.append(comp)
    if inv.distro is not None:
        d = inv.distro
        components.append(
            {
                "bom-ref": f"os:{d.id}-{d.version_id}",
                "type": "operating-system",
                "name": d.id,
                "version": d.version_id,
                "description": d.pretty_name or d.name,
            }
        )
    root: dict[str, Any] = {
        "bom-ref": "image",
        "type": "container" if inv.image else "file",
        "name": common.image_name(inv),
    }
    if common.image_version(inv):
        root["version"] = common.image_version(inv)
    if inv.image and inv.image.platform:
        root["properties"] = [{"name": "stockade:image:platform", "value": inv.image.platform}]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": stamp,
            "tools": {
                "components": [
                    {"type": "application", "name": common.TOOL, "version": common.TOOL_VERSION}
                ]
            },
            "component": root,
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components]}],
    }


def write(inv: Inventory) -> str:
    return json.dumps(to_dict(inv), indent=2) + "\n"


# --- reading ------------------------------------------------------------------------------


def _props(comp: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in common.items(comp.get("properties")):
        if (
            isinstance(p, dict)
            and isinstance(p.get("name"), str)
            and isinstance(p.get("value"), str)
        ):
            out.setdefault(p["name"], p["value"])
    return out


def _read_licenses(comp: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for item in common.items(comp.get("licenses")):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("expression"), str):
            out.append(item["expression"])
        lic = item.get("license")
        if isinstance(lic, dict):
            value = lic.get("id") or lic.get("name")
            if isinstance(value, str) and value:
                out.append(value)
    return tuple(out)


def package_from(
    *,
    name: str,
    version: str,
    purl: str,
    licenses: tuple[str, ...],
    type_hint: str | None,
    locations: tuple[str, ...],
    extra: dict[str, str],
) -> Package | None:
    """A Package from SBOM fields; the purl fills in type, arch and source package."""
    parsed = purls.parse(purl) if purl else None
    ptype = parsed[0] if parsed else ""
    pkg_type = type_hint or common.PACKAGE_TYPE.get(ptype, ptype or "unknown")
    if pkg_type in ("go", "golang"):
        pkg_type = "go-module"
    quals = parsed[4] if parsed else {}
    source_name = extra.get("source_name") or None
    source_version = extra.get("source_version") or None
    upstream = quals.get("upstream")
    if upstream and not source_name:
        if pkg_type == "rpm" and upstream.endswith(".src.rpm"):
            parts = upstream[: -len(".src.rpm")].rsplit("-", 2)
            if len(parts) == 3:
                source_name, source_version = parts[0], f"{parts[1]}-{parts[2]}"
        else:
            source_name, _, sv = upstream.partition("@")
            source_version = sv or source_version
    if pkg_type in ("deb", "apk", "rpm") and not source_name:
        source_name = name
    if pkg_type in ("deb", "apk", "rpm") and not source_version:
        source_version = version
    meta = []
    if pkg_type == "java-archive" and parsed and parsed[1]:
        meta.append(("maven-group", parsed[1]))
    if not name:
        return None
    return Package(
        type=pkg_type,
        name=name,
        version=version,
        purl=purl,
        licenses=licenses,
        locations=locations,
        layer=extra.get("layer"),
        source_name=source_name,
        source_version=source_version,
        arch=extra.get("arch") or quals.get("arch"),
        metadata=tuple(meta),
    )


def _walk(components: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = list(reversed(components))
    while stack and len(out) < 1_000_000:
        comp = stack.pop()
        if isinstance(comp, dict):
            out.append(comp)
            stack.extend(reversed(common.items(comp.get("components"))))
    return out


def from_dict(doc: dict[str, Any]) -> Inventory:
    packages: list[Package] = []
    distro: Distro | None = None
    for comp in _walk(common.items(doc.get("components"))):
        name = common.text(comp.get("name"))
        version = common.text(comp.get("version"))
        if comp.get("type") == "operating-system":
            if name and distro is None:
                distro = Distro(
                    id=name.lower(),
                    version_id=version,
                    pretty_name=str(comp.get("description") or ""),
                )
            continue
        props = _props(comp)
        locations = tuple(
            v for k, v in sorted(props.items()) if k.endswith(":path") and ":location:" in k
        )
        group = comp.get("group")
        type_hint = props.get("stockade:package:type") or props.get("syft:package:type")
        pkg = package_from(
            name=name,
            version=version,
            purl=common.text(comp.get("purl")),
            licenses=_read_licenses(comp),
            type_hint=type_hint,
            locations=locations,
            extra={
                "source_name": props.get("stockade:source:name")
                or props.get("syft:metadata:source")
                or "",
                "source_version": props.get("stockade:source:version")
                or props.get("syft:metadata:sourceVersion")
                or "",
                "layer": props.get("stockade:layer") or props.get("syft:location:0:layerID") or "",
                "arch": props.get("stockade:arch") or "",
            },
        )
        if pkg is None:
            continue
        if isinstance(group, str) and group and not pkg.meta("maven-group"):
            pkg = replace(pkg, metadata=(*pkg.metadata, ("maven-group", group)))
        packages.append(pkg)
    meta = common.obj(doc.get("metadata"))
    root = common.obj(meta.get("component"))
    name = common.text(root.get("name"))
    image = ImageInfo(
        reference=name,
        name=name or None,
        manifest_digest=root.get("version") if isinstance(root.get("version"), str) else None,
    )
    return Inventory(source=name, image=image, distro=distro, packages=tuple(packages))
