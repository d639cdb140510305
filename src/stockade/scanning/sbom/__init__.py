"""SBOMs: writers (Stockade JSON, CycloneDX 1.5 JSON, SPDX 2.3 JSON) and readers (the same
three plus syft's JSON) that turn a document back into an Inventory for ``stockade scan sbom``.

    write(inventory, "cyclonedx") -> str
    read(data, name="file.json") -> Inventory     # format detected from the content
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from stockade.model.errors import InputError
from stockade.scanning.interface import Inventory

FORMATS = ("json", "cyclonedx", "spdx")
MAX_SBOM = 512 * 1024 * 1024


def write(inventory: Inventory, fmt: str) -> str:
    """The inventory as a document in format ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        from stockade.scanning.sbom import native

        return native.write(inventory)
    if fmt == "cyclonedx":
        from stockade.scanning.sbom import cyclonedx

        return cyclonedx.write(inventory)
    if fmt == "spdx":
        from stockade.scanning.sbom import spdx

        return spdx.write(inventory)
    raise ValueError(f"unknown SBOM format {fmt!r}")


def detect(doc: Any) -> str:
    """The format of a parsed SBOM document: json, cyclonedx, spdx or syft."""
    if isinstance(doc, dict):
        from stockade.scanning.sbom import native

        if doc.get("$schema") == native.SCHEMA:
            return "json"
        if doc.get("bomFormat") == "CycloneDX":
            return "cyclonedx"
        if isinstance(doc.get("spdxVersion"), str) and doc["spdxVersion"].startswith("SPDX-2."):
            return "spdx"
        if isinstance(doc.get("artifacts"), list) and isinstance(doc.get("schema"), dict):
            return "syft"
    raise InputError(
        "not a recognised SBOM (expected Stockade JSON, CycloneDX JSON, SPDX 2.x JSON or syft JSON)"
    )


def read(data: bytes, name: str = "SBOM") -> Inventory:
    """Parse an SBOM document (format detected from its content) into an Inventory."""
    if len(data) > MAX_SBOM:
        raise InputError("larger than 512 MiB", subject=name)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(
            f"not valid JSON ({str(exc).splitlines()[0][:120]})", subject=name
        ) from exc
    try:
        fmt = detect(doc)
    except InputError as exc:
        raise InputError(exc.message, subject=name) from None
    try:
        inventory = _from_dict(fmt, doc)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise InputError(
            f"malformed {fmt} document ({type(exc).__name__}: {exc})", subject=name
        ) from exc
    if inventory.distro is None:
        from stockade.scanning.sbom.common import distro_from_purls

        inventory = replace(inventory, distro=distro_from_purls(inventory.packages))
    return inventory


def _from_dict(fmt: str, doc: Any) -> Inventory:
    if fmt == "json":
        from stockade.scanning.sbom import native

        return native.from_dict(doc)
    if fmt == "cyclonedx":
        from stockade.scanning.sbom import cyclonedx

        return cyclonedx.from_dict(doc)
    if fmt == "spdx":
        from stockade.scanning.sbom import spdx

        return spdx.from_dict(doc)
    from stockade.scanning.sbom import syft

    return syft.from_dict(doc)
