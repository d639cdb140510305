"""The OS identity of an image from its os-release file."""

from __future__ import annotations

import shlex

from stockade.scanning.interface import Distro

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")


def parse_os_release(data: bytes) -> Distro | None:
    """A :class:`Distro` from os-release text, or None when it has no ID."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        fields[key.strip()] = " ".join(parts)
    if not fields.get("ID"):
        return None
    return Distro(
        id=fields["ID"].lower(),
        version_id=fields.get("VERSION_ID", ""),
        name=fields.get("NAME", ""),
        version_codename=fields.get("VERSION_CODENAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        id_like=tuple(fields.get("ID_LIKE", "").split()),
    )
