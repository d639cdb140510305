"""npm packages: every ``package.json`` inside a ``node_modules`` tree (the installed truth in
an image; lock files may be absent), plus application package.json files (see ``wants``)."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from typing import Any

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers._text import json_document
from stockade.scanning.interface import FileEntry, Package

_MAX = 4 * 1024 * 1024


def licenses_of(doc: dict[str, Any]) -> tuple[str, ...]:
    """``license`` as a string or ``{type}``, or the deprecated ``licenses`` list of either."""
    out: list[str] = []

    def add(value: object) -> None:
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
        elif isinstance(value, dict):
            add(value.get("type"))

    add(doc.get("license"))
    legacy = doc.get("licenses")
    if isinstance(legacy, list):
        for item in legacy[:32]:
            add(item)
    else:
        add(legacy)
    return tuple(dict.fromkeys(out))


def npm_purl(name: str, version: str) -> str:
    namespace, _, base = name.rpartition("/")
    return purl.build("npm", base, version, namespace=namespace)


class NpmCataloger:
    name = "npm"
    version = 2  # 2: a package.json opening with a BOM is read

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path.endswith("/package.json") and stat.S_ISREG(mode) and size <= _MAX

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            try:
                doc = json_document(entry.data)
            except ValueError:
                continue  # a broken package.json is not a package (syft skips it too)
            if not isinstance(doc, dict):
                continue
            name, version = doc.get("name"), doc.get("version")
            if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
                continue
            out.append(
                Package(
                    type="npm",
                    name=name,
                    version=version,
                    purl=npm_purl(name, version),
                    licenses=licenses_of(doc),
                    locations=(entry.path,),
                    layer=entry.layer,
                )
            )
        return out
