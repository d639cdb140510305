"""Packages declared by ELF binaries themselves: the ``.note.package`` section of the "Package
Metadata for Executable Files" convention (systemd's, Fedora's and Debian's builds embed it): a
note of type 0xcafe1a7e, owner ``FDO``, whose descriptor is a JSON object with ``type`` (deb, rpm,
apk...), ``name``, ``version``, ``architecture`` and ``os``.

They matter where no package database is left (a binary copied into a distroless or scratch
image). Where the package database lists the same (type, name, version), ``finalize`` keeps
only the database's entry.
"""

from __future__ import annotations

import json
import stat
import struct
from collections.abc import Sequence
from dataclasses import replace

from stockade.scanning.catalogers import elf
from stockade.scanning.catalogers.ospurl import os_purl
from stockade.scanning.interface import FileEntry, Package

NOTE_TYPE = 0xCAFE1A7E
EVIDENCE = "elf-package-note"
_MAX_BINARY = 512 * 1024 * 1024
_MAX_NOTE = 64 * 1024
_TYPES = {"deb": "deb", "rpm": "rpm", "apk": "apk"}


_SECTION_NAME = b".note.package"


def package_notes(data: bytes) -> list[dict[str, object]]:
    """The JSON objects of an ELF file's FDO package notes (empty if none or malformed)."""
    if _SECTION_NAME not in data:  # the section's name is in the file if the section is
        return []
    binary = elf.parse(data)
    if binary is None:
        return []
    section = binary.sections.get(_SECTION_NAME.decode())
    if section is None or section.size > _MAX_NOTE:
        return []
    e = ">" if binary.big_endian else "<"
    raw = data[section.offset : section.offset + section.size]
    out: list[dict[str, object]] = []
    pos = 0
    while pos + 12 <= len(raw):
        namesz, descsz, ntype = struct.unpack_from(e + "III", raw, pos)
        name_end = pos + 12 + namesz
        desc_start = pos + 12 + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(raw):
            break
        if ntype == NOTE_TYPE and raw[pos + 12 : name_end].rstrip(b"\0") == b"FDO":
            try:
                doc = json.loads(raw[desc_start:desc_end].rstrip(b"\0").decode("utf-8"))
            except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deeply
                doc = None
            if isinstance(doc, dict):
                out.append(doc)
        pos = desc_start + ((descsz + 3) & ~3)
    return out


class ElfPackageNoteCataloger:
    name = "elf-package-note"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode) or not 64 <= size <= _MAX_BINARY:
            return False
        return bool(mode & 0o111) or ".so" in path.rsplit("/", 1)[-1]

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.data[:4] != b"\x7fELF":
                continue
            for note in package_notes(entry.data):
                kind, name, version = note.get("type"), note.get("name"), note.get("version")
                if not (
                    isinstance(kind, str) and isinstance(name, str) and isinstance(version, str)
                ):
                    continue
                pkg_type = _TYPES.get(kind.lower())
                if pkg_type is None or not name or not version:
                    continue
                arch = note.get("architecture")
                pkg = Package(
                    type=pkg_type,
                    name=name,
                    version=version,
                    locations=(entry.path,),
                    layer=entry.layer,
                    source_name=name,
                    source_version=version,
                    arch=arch if isinstance(arch, str) and arch else None,
                    metadata=(("evidence", EVIDENCE),),
                )
                out.append(replace(pkg, purl=os_purl(pkg, None)))
        return out
