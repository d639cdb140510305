"""Reader for syft's own JSON (``syft -o syft-json``)."""

from __future__ import annotations

from typing import Any

from stockade.scanning.interface import Distro, ImageInfo, Inventory, Package
from stockade.scanning.sbom import common
from stockade.scanning.sbom.cyclonedx import package_from

_PSEUDO = {"binary"}  # syft's binary classifiers have no package-manager identity


def _licenses(art: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for lic in common.items(art.get("licenses")):
        if isinstance(lic, dict):
            value = lic.get("spdxExpression") or lic.get("value")
            if isinstance(value, str) and value:
                out.append(value)
        elif isinstance(lic, str):
            out.append(lic)
    return tuple(dict.fromkeys(out))


def _source(art: dict[str, Any]) -> tuple[str, str]:
    meta = common.obj(art.get("metadata"))
    for name_key, version_key in (
        ("source", "sourceVersion"),
        ("originPackage", ""),
        ("sourceRpm", ""),
    ):
        value = meta.get(name_key)
        if isinstance(value, str) and value:
            version = meta.get(version_key) if version_key else ""
            return value, version if isinstance(version, str) else ""
    return "", ""


def from_dict(doc: dict[str, Any]) -> Inventory:
    packages: list[Package] = []
    for art in common.items(doc.get("artifacts")):
        if not isinstance(art, dict) or art.get("type") in _PSEUDO:
            continue
        locations = tuple(
            loc["path"]
            for loc in common.items(art.get("locations"))
            if isinstance(loc, dict) and isinstance(loc.get("path"), str)
        )
        layer = next(
            (
                loc.get("layerID")
                for loc in common.items(art.get("locations"))
                if isinstance(loc, dict) and loc.get("layerID")
            ),
            "",
        )
        src_name, src_version = _source(art)
        if art.get("type") == "rpm" and src_name.endswith(".src.rpm"):
            src_name = ""  # the purl's upstream qualifier carries it in a parseable form
        version = common.text(art.get("version"))
        pkg = package_from(
            name=common.text(art.get("name")),
            version="" if version == "UNKNOWN" else version,
            purl=common.text(art.get("purl")),
            licenses=_licenses(art),
            type_hint=art.get("type") if isinstance(art.get("type"), str) else None,
            locations=locations,
            extra={"source_name": src_name, "source_version": src_version, "layer": layer or ""},
        )
        if pkg is not None:
            packages.append(pkg)
    distro = None
    d = doc.get("distro")
    if isinstance(d, dict) and isinstance(d.get("id"), str) and d["id"]:
        distro = Distro(
            id=d["id"],
            version_id=str(d.get("versionID") or ""),
            name=str(d.get("name") or ""),
            pretty_name=str(d.get("prettyName") or ""),
            version_codename=str(d.get("versionCodename") or ""),
        )
    src = common.obj(doc.get("source"))
    name = common.text(src.get("name"))
    return Inventory(
        source=name,
        image=ImageInfo(reference=name, name=name or None),
        distro=distro,
        packages=tuple(packages),
    )
