"""Debian packages: ``/var/lib/dpkg/status``, distroless ``/var/lib/dpkg/status.d/*`` and the
machine-readable ``/usr/share/doc/<pkg>/copyright`` files that carry their licenses.

A package's copyright file may sit in another layer than the status file that lists it, so
licenses travel as pseudo-packages of type :data:`COPYRIGHT_TYPE` (one per copyright file) and
``finalize`` attaches them to the deb packages of the same name after the layer merge.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from dataclasses import replace

from stockade.scanning.catalogers._text import decode, stanzas
from stockade.scanning.catalogers.ospurl import os_purl
from stockade.scanning.catalogers.owned import owned
from stockade.scanning.interface import FileEntry, Package

COPYRIGHT_TYPE = "deb-copyright"
STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d/"
INFO = "/var/lib/dpkg/info/"
_DOC = re.compile(r"^/usr/share/doc/([^/]+)/copyright$")
_LICENSE_LINE = re.compile(r"^License:[ \t]*(\S[^\n]*)", re.MULTILINE)
_CHOICE = re.compile(r"\s+(?:or|and)\s+", re.IGNORECASE)
_COMMON_LICENSE = re.compile(r"/usr/share/common-licenses/([0-9A-Za-z_.+\-]+)")
_SOURCE = re.compile(r"^(\S+)\s*\((.+)\)\s*$")
_MAX_STATUS = 64 * 1024 * 1024
_MAX_COPYRIGHT = 16 * 1024 * 1024  # boost's is 2 MB
_MAX_LIST = 16 * 1024 * 1024


def copyright_licenses(text: str) -> tuple[str, ...]:
    """Licenses named in a Debian copyright file: ``License:`` lines of the machine-readable
    format (DEP-5; "A or B" gives both, "GPL-2 with X exception" gives GPL-2) and every
    reference to ``/usr/share/common-licenses/NAME``. Sorted, unique."""
    found: set[str] = set()
    for m in _LICENSE_LINE.finditer(text):
        for choice in _CHOICE.split(m.group(1).strip()):
            found.add(choice.split()[0] if choice.split() else "")
    found.update(m.group(1) for m in _COMMON_LICENSE.finditer(text))
    cleaned = {x.strip(".,;:()") for x in found}
    # DEP-5's "none" means no license; a free-text first line ("License:  * Permission...")
    # names none either
    return tuple(
        sorted(x for x in cleaned if x and x.lower() != "none" and any(c.isalnum() for c in x))
    )


def _installed(fields: dict[str, str], *, distroless: bool) -> bool:
    status = fields.get("Status")
    if status is None:
        # distroless status.d files omit Status: everything listed there is installed
        return distroless
    words = status.split()
    return len(words) == 3 and words[2] == "installed"


def _package(fields: dict[str, str], entry: FileEntry) -> Package | None:
    name = fields.get("Package", "").strip()
    version = fields.get("Version", "").strip()
    if not name or not version:
        return None
    source_name, source_version = name, version
    source = fields.get("Source", "").strip()
    if source:
        m = _SOURCE.match(source)
        if m:
            source_name, source_version = m.group(1), m.group(2).strip()
        else:
            source_name = source.split()[0]
    meta = [
        ("maintainer", fields.get("Maintainer", "")),
        ("installed-size", fields.get("Installed-Size", "")),
    ]
    pkg = Package(
        type="deb",
        name=name,
        version=version,
        locations=(entry.path,),
        layer=entry.layer,
        source_name=source_name,
        source_version=source_version,
        arch=fields.get("Architecture") or None,
        metadata=tuple((k, v) for k, v in meta if v),
    )
    return _with_purl(pkg)


def _with_purl(pkg: Package) -> Package:
    return replace(pkg, purl=os_purl(pkg, None))


def _owner_of_list(path: str) -> str | None:
    """The package whose file list ``path`` is: ``info/<pkg>[:arch].list`` or a distroless
    ``status.d/<pkg>.md5sums``; None for any other file."""
    base = path.rsplit("/", 1)[-1]
    for prefix, suffix in ((INFO, ".list"), (STATUS_D, ".md5sums")):
        if path.startswith(prefix) and base.endswith(suffix):
            return base[: -len(suffix)].split(":")[0]
    return None


def _listed_paths(entry: FileEntry) -> list[str]:
    lines = decode(entry.data).splitlines()
    if entry.path.endswith(".list"):
        return lines  # absolute paths, one a line
    # "<md5>  <path relative to />"
    return [
        "/" + parts[1].lstrip("/")
        for parts in (ln.split(None, 1) for ln in lines)
        if len(parts) == 2
    ]


class DpkgCataloger:
    name = "dpkg"
    version = 3

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode):
            return False
        if path == STATUS:
            return size <= _MAX_STATUS
        if path.startswith(STATUS_D):
            rest = path[len(STATUS_D) :]
            if rest.endswith(".md5sums"):
                return "/" not in rest and size <= _MAX_LIST
            return "/" not in rest and size <= _MAX_STATUS
        if path.startswith(INFO):
            rest = path[len(INFO) :]
            return "/" not in rest and rest.endswith(".list") and size <= _MAX_LIST
        return size <= _MAX_COPYRIGHT and _DOC.match(path) is not None

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            m = _DOC.match(entry.path)
            if m:
                licenses = copyright_licenses(decode(entry.data[:_MAX_COPYRIGHT]))
                out.append(
                    Package(
                        type=COPYRIGHT_TYPE,
                        name=m.group(1),
                        version="",
                        licenses=licenses,
                        locations=(entry.path,),
                        layer=entry.layer,
                    )
                )
                continue
            owner = _owner_of_list(entry.path)
            if owner is not None:
                record = owned(entry, owner, _listed_paths(entry))
                out.extend([record] if record else [])
                continue
            distroless = entry.path.startswith(STATUS_D)
            if entry.path != STATUS and not distroless:
                continue
            for fields in stanzas(decode(entry.data)):
                if not _installed(fields, distroless=distroless):
                    continue
                pkg = _package(fields, entry)
                if pkg is not None:
                    out.append(pkg)
        return out
