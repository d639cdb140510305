"""Alpine packages: ``/lib/apk/db/installed`` (and ``/usr/lib/apk/db/installed``).

The database is a list of blank-line-separated records of single-letter keys: ``P`` name, ``V``
version, ``A`` arch, ``o`` origin (the source package), ``L`` license, ``m`` maintainer, ...
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import replace

from stockade.scanning.catalogers._text import decode
from stockade.scanning.catalogers.ospurl import os_purl
from stockade.scanning.catalogers.owned import owned
from stockade.scanning.interface import FileEntry, Package

PATHS = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
_MAX = 64 * 1024 * 1024


def _records(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each record's fields and the files it installed (``R:`` names under the last ``F:``)."""
    records: list[tuple[dict[str, str], list[str]]] = []
    current: dict[str, str] = {}
    files: list[str] = []
    folder = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append((current, files))
            current, files, folder = {}, [], ""
            continue
        if len(line) < 2 or line[1] != ":":
            continue
        key, value = line[0], line[2:].strip()
        if key == "F":
            folder = value.strip("/")
        elif key == "R" and value:
            files.append(f"/{folder}/{value}" if folder else f"/{value}")
        # single-letter keys repeat for files (F, R, Z, ...): keep only the first of each
        current.setdefault(key, value)
    if current:
        records.append((current, files))
    return records


def split_license(text: str) -> tuple[str, ...]:
    """apk ``L:`` values are SPDX-ish expressions or space-separated lists; keep them whole unless
    they are a plain list of identifiers."""
    text = text.strip()
    if not text:
        return ()
    upper = f" {text.upper()} "
    if " AND " in upper or " OR " in upper or " WITH " in upper or "(" in text:
        return (text,)
    return tuple(dict.fromkeys(text.split()))


class ApkCataloger:
    name = "apk"
    version = 2

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path in PATHS and stat.S_ISREG(mode) and size <= _MAX

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.path not in PATHS:
                continue
            for rec, installed in _records(decode(entry.data)):
                name, version = rec.get("P", ""), rec.get("V", "")
                if not name or not version:
                    continue
                origin = rec.get("o") or name
                pkg = Package(
                    type="apk",
                    name=name,
                    version=version,
                    licenses=split_license(rec.get("L", "")),
                    locations=(entry.path,),
                    layer=entry.layer,
                    source_name=origin,
                    source_version=version,
                    arch=rec.get("A") or None,
                    metadata=tuple((k, v) for k, v in (("maintainer", rec.get("m", "")),) if v),
                )
                out.append(replace(pkg, purl=os_purl(pkg, None)))
                record = owned(entry, name, installed)
                out.extend([record] if record else [])
        return out
