"""Image sources: the reference parser and the protocol every source implements.

A reference names where an image (or a root filesystem) lives::

    docker-archive:PATH             a ``docker save`` tarball (legacy or OCI-style)
    oci:PATH[:TAG]                  an OCI image layout, directory or tar
    HOST[:PORT]/REPO[:TAG|@DIGEST]  an image in a registry (OCI distribution API)
    dir:PATH                        a root filesystem (``dir:/`` is this host)
    pid:PID                         the root filesystem of a running process (``/proc/PID/root``)

Image sources resolve the reference to a manifest and config (:class:`ResolvedImage`) and open layer
blobs as byte streams; root filesystems are walked by :mod:`stockade.scanning.sources.rootfs`.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from stockade.model.errors import UsageError
from stockade.scanning.interface import ImageInfo, LayerInfo, Readable

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A parsed REF. ``kind`` is one of docker-archive, oci, registry, dir, pid."""

    kind: str
    text: str  # what the user typed
    path: str = ""  # docker-archive, oci, dir; /proc/PID/root for pid
    tag: str | None = None  # oci, registry
    digest: str | None = None  # registry
    host: str = ""  # registry: "127.0.0.1:5000"
    repository: str = ""  # registry: "library/app"
    pid: int | None = None

    @property
    def is_image(self) -> bool:
        return self.kind in ("docker-archive", "oci", "registry")


def parse_reference(text: str) -> Reference:
    """Parse a REF; raises :class:`UsageError` (exit 2) for text that is none of the forms."""
    if not text or text != text.strip():
        raise UsageError(f"not an image reference: {text!r}")
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "docker-archive":
        return Reference(kind="docker-archive", text=text, path=_need(rest, text))
    if sep and scheme in ("oci", "oci-dir", "oci-archive"):
        return _parse_oci(rest, text)
    if sep and scheme == "dir":
        return Reference(kind="dir", text=text, path=_need(rest, text))
    if sep and scheme == "pid":
        if not rest.isdigit() or int(rest) <= 0:
            raise UsageError(f"pid: needs a process id, got {rest!r}")
        return Reference(kind="pid", text=text, path=f"/proc/{int(rest)}/root", pid=int(rest))
    if sep and scheme in ("registry", "docker"):
        text_ref = rest.removeprefix("//")
        return _parse_registry(text_ref, text)
    return _parse_registry(text, text)


def parse_registry_reference(text: str) -> Reference:
    """Parse ``HOST[:PORT]/REPO[:TAG|@DIGEST]`` only: no scheme, no local source (for references
    that come from someone else, such as a pod's ``image:``). Raises :class:`UsageError`."""
    _refuse_local(text)
    return _parse_registry(text, text)


def pod_image_reference(text: str) -> str:
    """The registry reference a pod's ``image:`` names, as the kubelet pulls it: Docker Hub's
    familiar names take their registry (``nginx:1.27`` is ``docker.io/library/nginx:1.27``,
    ``bitnami/redis:7`` is ``docker.io/bitnami/redis:7``); a reference with its registry host is
    kept as written. Local sources and schemes (``dir:/``, ``pid:1``) are refused as by
    :func:`parse_registry_reference`. Raises :class:`UsageError`."""
    _refuse_local(text)
    first, sep, _ = text.partition("/")
    if not sep or not (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    ):
        text = "docker.io/" + (text if sep else f"library/{text}")
    _parse_registry(text, text)
    return text


def _refuse_local(text: str) -> None:
    if not text or text != text.strip():
        raise UsageError(f"not an image reference: {text!r}")
    scheme, sep, rest = text.partition(":")
    if sep and (
        scheme in ("docker-archive", "oci", "oci-dir", "oci-archive", "dir", "pid")
        or rest.startswith("//")
    ):
        raise UsageError(
            f"not a registry image: {text!r} names a local source or a scheme; only "
            "HOST[:PORT]/REPO[:TAG|@DIGEST] references are accepted here"
        )


def _need(path: str, text: str) -> str:
    if not path:
        raise UsageError(f"missing path in {text!r}")
    return path


def _parse_oci(rest: str, text: str) -> Reference:
    path, tag = _need(rest, text), None
    # A trailing ":TAG" is a tag only when the remaining path exists as given; "oci:dir:latest".
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail and _TAG_RE.match(tail):
        path, tag = head, tail
    return Reference(kind="oci", text=text, path=path, tag=tag)


def _parse_registry(ref: str, text: str) -> Reference:
    if "/" not in ref:
        raise UsageError(
            f"not an image reference: {text!r} (expected docker-archive:PATH, oci:PATH[:TAG], "
            "HOST[:PORT]/REPO[:TAG|@DIGEST], dir:PATH or pid:PID)"
        )
    host, _, remainder = ref.partition("/")
    if not _HOST_RE.match(host) or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(f"registry reference needs a registry host (HOST[:PORT]/REPO): {text!r}")
    digest = tag = None
    if "@" in remainder:
        remainder, _, digest = remainder.partition("@")
        if not DIGEST_RE.match(digest):
            raise UsageError(f"not a sha256 digest in {text!r}: {digest!r}")
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, _, tag = remainder.rpartition(":")
        if not _TAG_RE.match(tag):
            raise UsageError(f"not a valid tag in {text!r}: {tag!r}")
    if not _REPO_RE.match(remainder):
        raise UsageError(f"not a valid repository name in {text!r}: {remainder!r}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(
        kind="registry", text=text, host=host, repository=remainder, tag=tag, digest=digest
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedImage:
    """An image whose manifest and config were read and checked against their digests."""

    info: ImageInfo
    diff_ids: tuple[str, ...]  # from the config, one per layer, in order
    config: dict[str, object]
    # the digest of the manifest or index the reference named, as read (registry images): what
    # cosign signs, pinned so a signature check never resolves the tag a second time
    reference_digest: str | None = None


class ImageSource(Protocol):
    """Where an image's manifest, config and layer blobs come from."""

    def resolve(self, platform: str | None = None) -> ResolvedImage:
        """Read the manifest (choosing one from an index by platform) and the config."""
        ...

    def open_blob(self, layer: LayerInfo) -> AbstractContextManager[Readable]:
        """The raw (possibly compressed) bytes of one layer blob, as a stream."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OpenImage:
    """A source whose manifest and config were read once: the scan decides from ``info`` whether a
    kept inventory serves, and reads the layers from the same source if not."""

    source: ImageSource
    resolved: ResolvedImage

    @property
    def info(self) -> ImageInfo:
        return self.resolved.info

    def close(self) -> None:
        self.source.close()
