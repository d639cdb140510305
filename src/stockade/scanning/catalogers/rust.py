"""Rust crates: ``Cargo.lock`` files and the dependency list ``cargo auditable`` embeds in
binaries.

- ``Cargo.lock`` (TOML, lock-file versions 1 to 4): every ``[[package]]`` with a ``source``
  (``registry+...`` or ``git+...``). Entries without one are the workspace's own crates or path
  dependencies: nothing identifies them on crates.io, so they are not reported.
- ``cargo auditable`` (https://github.com/rust-secure-code/cargo-auditable): an ELF section
  ``.dep-v0`` holding zlib-compressed JSON ``{"packages": [{"name", "version", "source", "kind",
  "dependencies", "root"}]}``; ``source`` is ``crates.io``, ``git``, ``local``, ``registry`` or
  ``other``. Crates with ``kind`` ``build`` ran at build time and are not in the binary;
  ``local`` crates are the binary's own code. Both are left out.
"""

from __future__ import annotations

import json
import stat
import zlib
from collections.abc import Sequence
from typing import Any

from stockade.scanning.catalogers import elf, purl
from stockade.scanning.catalogers._text import decode, toml_document
from stockade.scanning.catalogers.skipped import skipped
from stockade.scanning.interface import FileEntry, Package

SECTION = ".dep-v0"
EVIDENCE_AUDITABLE = "cargo-auditable"
_MAX_LOCK = 16 * 1024 * 1024
_MAX_BINARY = 512 * 1024 * 1024
_MAX_SECTION = 4 * 1024 * 1024
_MAX_JSON = 32 * 1024 * 1024  # bounds the inflated section (a zlib bomb stops here)


def _crate(name: str, version: str, entry: FileEntry, meta: list[tuple[str, str]]) -> Package:
    return Package(
        type="rust-crate",
        name=name,
        version=version,
        purl=purl.build("cargo", name, version),
        locations=(entry.path,),
        layer=entry.layer,
        metadata=tuple((k, v) for k, v in meta if v),
    )


def lockfile_crates(entry: FileEntry) -> list[Package] | str:
    """The crates of a Cargo.lock, or the reason it cannot be read."""
    try:
        doc = toml_document(decode(entry.data))
    except ValueError as exc:  # tomllib.TOMLDecodeError, or nested too deeply
        return f"not a readable Cargo.lock: {exc}"
    out: list[Package] = []
    packages = doc.get("package")
    for pkg in packages if isinstance(packages, list) else []:
        if not isinstance(pkg, dict):
            continue
        name, version, source = pkg.get("name"), pkg.get("version"), pkg.get("source")
        if not (isinstance(name, str) and isinstance(version, str) and isinstance(source, str)):
            continue
        checksum = pkg.get("checksum")
        meta = [
            ("cargo-source", source),
            ("checksum", checksum if isinstance(checksum, str) else ""),
        ]
        out.append(_crate(name, version, entry, meta))
    return out


def auditable_data(data: bytes) -> Any:
    """The decoded JSON of a binary's ``.dep-v0`` section, or None if it has none. Raises
    ValueError when the section is there but unreadable."""
    binary = elf.parse(data)
    section = binary.sections.get(SECTION) if binary is not None else None
    if section is None:
        return None
    if section.size > _MAX_SECTION:
        raise ValueError(f"{SECTION} section larger than {_MAX_SECTION} bytes")
    raw = data[section.offset : section.offset + section.size]
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(raw, _MAX_JSON)
    except zlib.error as exc:
        raise ValueError(f"{SECTION} is not zlib data: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError(f"{SECTION} inflates past {_MAX_JSON} bytes")
    try:
        return json.loads(text.decode("utf-8"))  # ValueError (incl. UnicodeDecodeError) if bad
    except RecursionError:
        raise ValueError(f"{SECTION} JSON nested too deeply") from None


def auditable_crates(doc: Any, entry: FileEntry) -> list[Package]:
    packages = doc.get("packages") if isinstance(doc, dict) else None
    out: list[Package] = []
    for pkg in packages if isinstance(packages, list) else []:
        if not isinstance(pkg, dict):
            continue
        name, version, source = pkg.get("name"), pkg.get("version"), pkg.get("source")
        if not (isinstance(name, str) and isinstance(version, str) and name and version):
            continue
        if pkg.get("kind", "runtime") == "build" or source == "local":
            continue
        meta = [
            ("cargo-source", source if isinstance(source, str) else ""),
            ("evidence", EVIDENCE_AUDITABLE),
        ]
        out.append(_crate(name, version, entry, meta))
    return out


class RustCataloger:
    name = "rust"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode):
            return False
        if path.endswith("/Cargo.lock"):
            return size <= _MAX_LOCK
        return bool(mode & 0o111) and 64 <= size <= _MAX_BINARY

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.path.endswith("/Cargo.lock"):
                found = lockfile_crates(entry)
                if isinstance(found, str):
                    out.append(skipped(entry, f"{entry.path}: {found}"))
                else:
                    out.extend(found)
                continue
            if entry.data[:4] != b"\x7fELF" or SECTION.encode() not in entry.data:
                continue
            try:
                doc = auditable_data(entry.data)
            except ValueError as exc:
                out.append(skipped(entry, f"{entry.path}: {exc}"))
                continue
            if doc is not None:
                out.extend(auditable_crates(doc, entry))
        return out
