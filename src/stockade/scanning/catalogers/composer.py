"""PHP Composer packages: ``composer.lock`` (``packages`` and ``packages-dev``) and what Composer
installed, ``vendor/composer/installed.json`` in both formats: Composer 1 writes a JSON list of
packages, Composer 2 an object ``{"packages": [...], "dev": bool, "dev-package-names": [...]}``.
Names are ``vendor/project``; purls ``pkg:composer/vendor/project@version``."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from typing import Any

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers._text import json_document
from stockade.scanning.catalogers.skipped import skipped
from stockade.scanning.interface import FileEntry, Package

_MAX = 32 * 1024 * 1024
_INSTALLED = "/vendor/composer/installed.json"


def composer_purl(name: str, version: str) -> str:
    namespace, _, project = name.rpartition("/")
    return purl.build("composer", project, version, namespace=namespace)


def _licenses(doc: dict[str, Any]) -> tuple[str, ...]:
    value = doc.get("license")
    items = value if isinstance(value, list) else [value]
    return tuple(x.strip() for x in items[:16] if isinstance(x, str) and x.strip())


def _package(doc: Any, entry: FileEntry, dev: bool) -> Package | None:
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or "/" not in name or not version:
        return None
    meta = [("dev", "true" if dev else "")]
    source = doc.get("source")
    if isinstance(source, dict) and isinstance(source.get("reference"), str):
        meta.append(("source-reference", source["reference"]))
    return Package(
        type="php-composer",
        name=name,
        version=version,
        purl=composer_purl(name, version),
        licenses=_licenses(doc),
        locations=(entry.path,),
        layer=entry.layer,
        metadata=tuple((k, v) for k, v in meta if v),
    )


def packages_of(doc: Any, entry: FileEntry) -> list[Package]:
    """The packages of a parsed composer.lock or installed.json (either format)."""
    pairs: list[tuple[Any, bool]] = []
    if isinstance(doc, list):  # installed.json, Composer 1
        pairs = [(p, False) for p in doc]
    elif isinstance(doc, dict):
        dev_names = doc.get("dev-package-names")
        dev_set = set(dev_names) if isinstance(dev_names, list) else set()
        packages = doc.get("packages")
        if isinstance(packages, list):
            pairs = [(p, isinstance(p, dict) and p.get("name") in dev_set) for p in packages]
        dev_list = doc.get("packages-dev")  # composer.lock
        if isinstance(dev_list, list):
            pairs += [(p, True) for p in dev_list]
    out = [_package(p, entry, dev) for p, dev in pairs]
    return [p for p in out if p is not None]


class ComposerCataloger:
    name = "composer"
    version = 2  # 2: a composer.lock opening with a BOM is read

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode) or size > _MAX:
            return False
        return path.endswith("/composer.lock") or path.endswith(_INSTALLED)

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            try:
                doc = json_document(entry.data)
            except ValueError:
                out.append(skipped(entry, f"{entry.path}: not valid JSON"))
                continue
            out.extend(packages_of(doc, entry))
        return out
