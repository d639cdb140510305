"""OS identity from ``/etc/os-release`` or ``/usr/lib/os-release``.

The distro is not a package, but it travels through the same per-layer cache as packages do: this
cataloger emits one pseudo-package of type :data:`OS_RELEASE_TYPE` per os-release file (name = ID,
version = VERSION_ID, every field in ``metadata``). :func:`stockade.scanning.catalogers.finalize`
turns the one that survives the layer merge into ``Inventory.distro`` and drops the pseudo-packages.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Sequence

from stockade.scanning.catalogers._text import decode
from stockade.scanning.interface import Distro, FileEntry, Package

OS_RELEASE_TYPE = "os-release"
PATHS = ("/etc/os-release", "/usr/lib/os-release")
_MAX = 64 * 1024


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines with shell quoting; malformed lines are ignored."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value, posix=True)
        except ValueError:
            parts = [value.strip("\"'")]
        fields[key.strip()] = " ".join(parts)
    return fields


def distro_from_fields(fields: dict[str, str]) -> Distro | None:
    """A Distro from os-release fields, or None without an ID."""
    distro_id = fields.get("ID", "").strip().lower()
    if not distro_id:
        return None
    return Distro(
        id=distro_id,
        version_id=fields.get("VERSION_ID", ""),
        name=fields.get("NAME", ""),
        version_codename=fields.get("VERSION_CODENAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        id_like=tuple(fields.get("ID_LIKE", "").split()),
    )


def distro_from_package(pkg: Package) -> Distro | None:
    """The Distro carried by an os-release pseudo-package."""
    return distro_from_fields(dict(pkg.metadata))


def detect_distro(files: Sequence[FileEntry]) -> Distro | None:
    """The Distro from a set of files (``/etc/os-release`` wins over ``/usr/lib/os-release``)."""
    by_path = {f.path: f for f in files}
    for path in PATHS:
        entry = by_path.get(path)
        if entry is not None:
            distro = distro_from_fields(parse_os_release(decode(entry.data)))
            if distro is not None:
                return distro
    return None


class OsReleaseCataloger:
    name = "os-release"
    version = 1

    def wants(self, path: str, mode: int, size: int) -> bool:
        return path in PATHS and size <= _MAX and not stat.S_ISDIR(mode)

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            if entry.path not in PATHS or not entry.data:
                continue
            fields = parse_os_release(decode(entry.data[:_MAX]))
            if not fields.get("ID"):
                continue
            out.append(
                Package(
                    type=OS_RELEASE_TYPE,
                    name=fields["ID"].lower(),
                    version=fields.get("VERSION_ID", ""),
                    locations=(entry.path,),
                    layer=entry.layer,
                    metadata=tuple(sorted(fields.items())),
                )
            )
        return out
