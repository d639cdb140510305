"""Stockade's own JSON: the Inventory as it is, lossless (``read(write(inv)) == inv``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from stockade.model.errors import InputError
from stockade.scanning.interface import Distro, ImageInfo, Inventory, LayerInfo, Package
from stockade.scanning.sbom.common import items, obj, text

SCHEMA = "https://stockade.dev/schema/sbom/1"


def to_dict(inv: Inventory) -> dict[str, Any]:
    pkgs = []
    for p in inv.packages:
        d = asdict(p)
        d["licenses"] = list(p.licenses)
        d["locations"] = list(p.locations)
        d["metadata"] = dict(p.metadata)
        pkgs.append(d)
    return {
        "$schema": SCHEMA,
        "source": inv.source,
        "image": asdict(inv.image) if inv.image else None,
        "distro": asdict(inv.distro) if inv.distro else None,
        "packages": pkgs,
        "skipped": list(inv.skipped),
        "cachedLayers": inv.cached_layers,
        "readLayers": inv.read_layers,
    }


def write(inv: Inventory) -> str:
    return json.dumps(to_dict(inv), indent=2, sort_keys=False) + "\n"


def _opt(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _strs(v: object) -> tuple[str, ...]:
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else ()


def from_dict(doc: dict[str, Any]) -> Inventory:
    """The inverse of :func:`to_dict`; unknown or mistyped fields are dropped, not trusted."""
    if doc.get("$schema") != SCHEMA:
        raise InputError("not a Stockade SBOM (missing $schema)")
    pkgs = []
    for p in items(doc.get("packages")):
        if not isinstance(p, dict) or not p.get("name"):
            continue
        meta = obj(p.get("metadata"))
        pkgs.append(
            Package(
                type=text(p.get("type")),
                name=text(p.get("name")),
                version=text(p.get("version")),
                purl=text(p.get("purl")),
                licenses=_strs(p.get("licenses")),
                locations=_strs(p.get("locations")),
                layer=_opt(p.get("layer")),
                source_name=_opt(p.get("source_name")),
                source_version=_opt(p.get("source_version")),
                arch=_opt(p.get("arch")),
                metadata=tuple((str(k), str(v)) for k, v in meta.items()),
            )
        )
    image = None
    img = doc.get("image")
    if isinstance(img, dict):
        layers = tuple(
            LayerInfo(
                digest=text(layer.get("digest")),
                diff_id=_opt(layer.get("diff_id")),
                media_type=text(layer.get("media_type")),
                size=int(layer.get("size") or 0),
                created_by=_opt(layer.get("created_by")),
            )
            for layer in items(img.get("layers"))
            if isinstance(layer, dict)
        )
        image = ImageInfo(
            reference=text(img.get("reference")),
            name=_opt(img.get("name")),
            tag=_opt(img.get("tag")),
            manifest_digest=_opt(img.get("manifest_digest")),
            config_digest=_opt(img.get("config_digest")),
            platform=_opt(img.get("platform")),
            layers=layers,
        )
    distro = None
    d = doc.get("distro")
    if isinstance(d, dict) and d.get("id"):
        distro = Distro(
            id=text(d.get("id")),
            version_id=text(d.get("version_id")),
            name=text(d.get("name")),
            version_codename=text(d.get("version_codename")),
            pretty_name=text(d.get("pretty_name")),
            id_like=_strs(d.get("id_like")),
            fips_streams=_strs(d.get("fips_streams")),
        )
    return Inventory(
        source=text(doc.get("source")),
        image=image,
        distro=distro,
        packages=tuple(pkgs),
        cached_layers=_count(doc.get("cachedLayers")),
        read_layers=_count(doc.get("readLayers")),
        skipped=_strs(doc.get("skipped")),
    )


def _count(value: object) -> int:
    """A count the document gives; anything but a whole number is none (it informs, no more)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
