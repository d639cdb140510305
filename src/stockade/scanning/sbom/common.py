"""Pieces shared by the SBOM writers and readers."""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from stockade import __version__
from stockade.scanning.interface import Distro, Inventory, Package

TOOL = "stockade"
TOOL_VERSION = __version__

# our package types <-> purl types (syft uses the same pairs)
PURL_TYPE = {
    "deb": "deb",
    "apk": "apk",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "go-module": "golang",
    "java-archive": "maven",
    "gem": "gem",
    "php-composer": "composer",
    "rust-crate": "cargo",
    "dotnet": "nuget",
}
PACKAGE_TYPE = {v: k for k, v in PURL_TYPE.items()}
_EXPRESSION = re.compile(r"\s(AND|OR|WITH)\s|[()]", re.IGNORECASE)
# a purl ``distro`` qualifier as syft and Stockade write it: ID-VERSION_ID (the ID may hold dashes)
_DISTRO_QUALIFIER = re.compile(r"^(?P<id>[a-z][a-z0-9._-]*?)(?:-(?P<version>\d[a-z0-9._~+]*))?$")
_OS_PURL_TYPES = ("deb", "apk", "rpm")


def text(value: object, default: str = "") -> str:
    """A JSON value read as a string: ``default`` when it is missing or not a string."""
    return value if isinstance(value, str) else default


def items(value: object) -> list[Any]:
    """A JSON value read as an array: empty when it is missing or not an array (a string or a
    number where a list belongs is one bad field, not a reason to refuse the whole document)."""
    return value if isinstance(value, list) else []


def obj(value: object) -> dict[str, Any]:
    """A JSON value read as an object: empty when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def package_id(pkg: Package) -> str:
    """16 hex digits identifying a package by what it is and where it was found: the same
    image gives the same ids on every run, different locations give different ids."""
    key = "\x1f".join((pkg.type, pkg.name, pkg.version, pkg.purl, *pkg.locations, pkg.layer or ""))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def unique_ids(packages: tuple[Package, ...]) -> list[str]:
    """package_id for each package, made unique if two packages are identical in every field."""
    seen: dict[str, int] = {}
    out = []
    for pkg in packages:
        pid = package_id(pkg)
        n = seen.get(pid, 0)
        seen[pid] = n + 1
        out.append(pid if n == 0 else f"{pid}-{n}")
    return out


@lru_cache(maxsize=1)
def spdx_ids() -> dict[str, str]:
    """Lower-cased SPDX license (and exception) id -> canonical spelling."""
    text = resources.files("stockade.scanning.sbom").joinpath("spdx_license_ids.json").read_text()
    return {i.lower(): i for i in json.loads(text)["ids"]}


def spdx_id(text: str) -> str | None:
    """The canonical SPDX id for ``text`` if it is one (case-insensitive), else None."""
    return spdx_ids().get(text.strip().lower())


def is_expression(text: str) -> bool:
    return bool(_EXPRESSION.search(text))


def expression_is_spdx(text: str) -> bool:
    """True if every identifier in a license expression is a known SPDX id (or LicenseRef-)."""
    tokens = [t for t in re.split(r"[\s()]+", text) if t and t.upper() not in ("AND", "OR", "WITH")]
    return bool(tokens) and all(
        spdx_id(t.rstrip("+")) or t.startswith("LicenseRef-") for t in tokens
    )


def image_name(inv: Inventory) -> str:
    if inv.image and inv.image.name:
        return inv.image.name + (f":{inv.image.tag}" if inv.image.tag else "")
    return inv.source


def image_version(inv: Inventory) -> str:
    if inv.image and inv.image.manifest_digest:
        return inv.image.manifest_digest
    if inv.image and inv.image.config_digest:
        return inv.image.config_digest
    return ""


def distro_from_purls(packages: tuple[Package, ...]) -> Distro | None:
    """The distro named by the ``distro`` qualifier of the OS packages' purls (``distro=rhel-8.1``),
    for documents that carry it nowhere else (syft's SPDX has no operating-system element). None
    when no OS purl has one or when they disagree."""
    from stockade.scanning.catalogers import purl

    seen = set()
    for pkg in packages:
        parsed = purl.parse(pkg.purl) if pkg.purl else None
        if parsed is not None and parsed[0] in _OS_PURL_TYPES and parsed[4].get("distro"):
            seen.add(parsed[4]["distro"].strip().lower())
    if len(seen) != 1:
        return None
    m = _DISTRO_QUALIFIER.match(seen.pop())
    if m is None:
        return None
    return Distro(id=m.group("id"), version_id=m.group("version") or "")
