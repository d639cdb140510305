"""Image and filesystem sources. :func:`open_source` picks the implementation for a reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stockade.scanning.sources.interface import ImageSource, Reference

if TYPE_CHECKING:
    from stockade.scanning.sources.registry_auth import AuthOptions


def open_source(
    ref: Reference,
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    auth: AuthOptions | None = None,
) -> ImageSource:
    """The :class:`ImageSource` for an image reference (docker-archive, oci or registry)."""
    if ref.kind == "docker-archive":
        from stockade.scanning.sources.docker_archive import DockerArchiveSource

        return DockerArchiveSource(ref.path, ref.text)
    if ref.kind == "oci":
        from stockade.scanning.sources.oci_layout import OciLayoutSource

        return OciLayoutSource(ref.path, ref.tag, ref.text)
    if ref.kind == "registry":
        from stockade.scanning.sources.registry import RegistrySource

        return RegistrySource(
            ref, insecure=insecure, username=username, password=password, auth=auth
        )
    raise ValueError(f"{ref.kind} is not an image source")
