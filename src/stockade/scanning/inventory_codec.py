"""Inventories to and from plain JSON values, for the scan results store."""

from __future__ import annotations

import dataclasses
from typing import Any

from stockade.model.errors import StoreError
from stockade.scanning.interface import Distro, ImageInfo, Inventory, LayerInfo, Package

CODEC_VERSION = 1


def inventory_to_dict(inv: Inventory) -> dict[str, Any]:
    return {
        "codec": CODEC_VERSION,
        "source": inv.source,
        "image": _image(inv.image) if inv.image else None,
        "distro": dataclasses.asdict(inv.distro) if inv.distro else None,
        "packages": [_package(p) for p in inv.packages],
        "skipped": list(inv.skipped),
    }


def _image(img: ImageInfo) -> dict[str, Any]:
    out = dataclasses.asdict(img)
    out["layers"] = [dataclasses.asdict(layer) for layer in img.layers]
    return out


def _package(p: Package) -> dict[str, Any]:
    out = dataclasses.asdict(p)
    out["metadata"] = [list(kv) for kv in p.metadata]
    return out


def inventory_from_dict(data: dict[str, Any]) -> Inventory:
    """Rebuild an inventory; a row written by an unknown codec is a store error, not a crash."""
    if data.get("codec") != CODEC_VERSION:
        raise StoreError(
            f"stored inventory has codec {data.get('codec')!r}, expected {CODEC_VERSION}"
        )
    try:
        img = data.get("image")
        distro = data.get("distro")
        return Inventory(
            source=data["source"],
            image=(
                ImageInfo(
                    **{k: v for k, v in img.items() if k != "layers"},
                    layers=tuple(LayerInfo(**layer) for layer in img.get("layers", ())),
                )
                if img
                else None
            ),
            distro=(
                Distro(
                    **{
                        **distro,
                        "id_like": tuple(distro.get("id_like", ())),
                        "fips_streams": tuple(distro.get("fips_streams", ())),
                    }
                )
                if distro
                else None
            ),
            packages=tuple(_package_from(p) for p in data.get("packages", ())),
            skipped=tuple(data.get("skipped", ())),
        )
    except (KeyError, TypeError) as exc:
        raise StoreError(f"stored inventory is malformed: {exc}") from exc


def _package_from(p: dict[str, Any]) -> Package:
    fields = dict(p)
    for key in ("licenses", "locations"):
        fields[key] = tuple(fields.get(key, ()))
    fields["metadata"] = tuple((str(k), str(v)) for k, v in fields.get("metadata", ()))
    return Package(**fields)
