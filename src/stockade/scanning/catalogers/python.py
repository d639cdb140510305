"""Installed Python distributions: ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO`` and
``*.egg-info`` files (core metadata, an RFC 822 header block)."""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence

from stockade.scanning.catalogers import purl
from stockade.scanning.catalogers._text import decode
from stockade.scanning.interface import FileEntry, Package

_MAX = 8 * 1024 * 1024
_NORMALIZE = re.compile(r"[-_.]+")
# the last one: an unpacked .egg directory
_SUFFIXES = (".dist-info/metadata", ".egg-info/pkg-info", "egg-info/pkg-info")


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name."""
    return _NORMALIZE.sub("-", name).lower()


def parse_metadata(text: str) -> dict[str, list[str]]:
    """Header fields of a core-metadata document (the body after the blank line is ignored)."""
    # A value is kept as its list of lines and joined once (appending to the str would copy it
    # every time: quadratic in a field of a million continuation lines).
    fields: dict[str, list[list[str]]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t":
            if lines is not None:
                lines.append(line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            lines = None
            continue
        lines = [value.strip()]
        fields.setdefault(name.strip().lower(), []).append(lines)
    return {key: ["\n".join(value) for value in values] for key, values in fields.items()}


def licenses_of(fields: dict[str, list[str]]) -> tuple[str, ...]:
    """License-Expression, else a short License field, else the license classifiers."""
    expr = [v for v in fields.get("license-expression", []) if v]
    if expr:
        return (expr[0],)
    lic = [v for v in fields.get("license", []) if v and v.upper() != "UNKNOWN"]
    # a License field holding the whole license text is not a license name
    if lic and "\n" not in lic[0] and len(lic[0]) <= 100:
        return (lic[0],)
    out = []
    for classifier in fields.get("classifier", []):
        parts = [p.strip() for p in classifier.split("::")]
        if len(parts) >= 2 and parts[0] == "License" and parts[-1] not in ("OSI Approved", ""):
            out.append(parts[-1])
    return tuple(dict.fromkeys(out))


class PythonCataloger:
    name = "python"
    version = 2

    def wants(self, path: str, mode: int, size: int) -> bool:
        if not stat.S_ISREG(mode) or size > _MAX:
            return False
        low = path.lower()
        return low.endswith(_SUFFIXES) or low.endswith(".egg-info")

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            fields = parse_metadata(decode(entry.data[:_MAX]))
            name = (fields.get("name") or [""])[0].strip()
            version = (fields.get("version") or [""])[0].strip()
            if not name or not version:
                continue
            # syft (and every advisory database) names projects by their PEP 503 form
            out.append(
                Package(
                    type="python",
                    name=normalize_name(name),
                    version=version,
                    purl=purl.build("pypi", normalize_name(name), version),
                    licenses=licenses_of(fields),
                    locations=(entry.path,),
                    layer=entry.layer,
                )
            )
        return out
