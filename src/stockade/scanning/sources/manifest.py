"""Manifests, indexes and image configs (OCI and Docker v2 schema 2): parsing, checking, choosing.

Shared by every image source: each one fetches bytes its own way and hands them here.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from collections.abc import Callable
from typing import Any

from stockade.model.errors import DigestMismatch, ImageError
from stockade.scanning.interface import LayerInfo
from stockade.scanning.sources.interface import DIGEST_RE

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, expected: str, what: str) -> None:
    """Raise DigestMismatch when ``data`` does not hash to ``expected`` (sha256 only)."""
    check_digest_format(expected, what)
    actual = sha256_digest(data)
    if actual != expected:
        raise DigestMismatch(f"digest mismatch: expected {expected}, got {actual}", subject=what)


def check_digest_format(digest: object, what: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ImageError(f"not a sha256 digest: {str(digest)[:80]!r}", subject=what)
    return digest


def parse_json(data: bytes, what: str) -> Any:
    """Any JSON document of an image; malformed, too deeply nested or oversized numbers: ImageError."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ImageError("not valid JSON: nested too deeply", subject=what) from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers over 4300 digits
        raise ImageError(f"not valid JSON: {str(exc)[:200]}", subject=what) from exc


def load_json(data: bytes, what: str) -> dict[str, Any]:
    doc = parse_json(data, what)
    if not isinstance(doc, dict):
        raise ImageError("expected a JSON object", subject=what)
    return doc


def host_platform() -> str:
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7", "i686": "386"}.get(
        machine, machine
    )
    return f"linux/{arch}"


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _size(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _platform_of(entry: dict[str, Any]) -> str:
    plat = entry.get("platform") or {}
    if not isinstance(plat, dict):
        return ""
    text = f"{plat.get('os', '')}/{plat.get('architecture', '')}"
    if plat.get("variant"):
        text += f"/{plat['variant']}"
    return text


def _platform_matches(candidate: str, wanted: str) -> bool:
    if candidate == wanted:
        return True
    # "linux/arm64" matches "linux/arm64/v8"; "linux/amd64" never matches "linux/amd64/v3" only.
    return candidate.startswith(wanted + "/") or wanted.startswith(candidate + "/")


def select_from_index(index: dict[str, Any], platform: str | None, what: str) -> dict[str, Any]:
    """The manifest descriptor for ``platform`` (default: linux/amd64 or the host's)."""
    entries = [m for m in _list(index.get("manifests")) if isinstance(m, dict)]
    entries = [m for m in entries if _platform_of(m) not in ("unknown/unknown",)]  # attestations
    if not entries:
        raise ImageError("the image index lists no manifests", subject=what)
    wanted = platform or host_platform()
    for entry in entries:
        if _platform_matches(_platform_of(entry), wanted):
            return entry
    if platform is None and len(entries) == 1:
        return entries[0]
    have = ", ".join(sorted({_platform_of(m) or "?" for m in entries}))
    raise ImageError(f"no manifest for platform {wanted} (the index has: {have})", subject=what)


def parse_manifest(doc: dict[str, Any], what: str) -> tuple[str, tuple[LayerInfo, ...]]:
    """The config digest and the layer descriptors of an image manifest."""
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ImageError("manifest has no config descriptor", subject=what)
    config_digest = check_digest_format(config.get("digest"), what)
    layers = []
    for raw in _list(doc.get("layers")):
        if not isinstance(raw, dict):
            raise ImageError("manifest has a malformed layer descriptor", subject=what)
        media_type = str(raw.get("mediaType") or "")
        layers.append(
            LayerInfo(
                digest=check_digest_format(raw.get("digest"), what),
                diff_id=None,
                media_type=media_type,
                size=_size(raw.get("size")),
            )
        )
    return config_digest, tuple(layers)


def parse_config(data: bytes, what: str) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """The config document, its diff ids and ``os/arch``."""
    config = load_json(data, what)
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ImageError("image config has no rootfs.diff_ids", subject=what)
    diff_ids = tuple(check_digest_format(d, what) for d in rootfs["diff_ids"])
    plat = None
    if config.get("os") and config.get("architecture"):
        plat = f"{config['os']}/{config['architecture']}"
        if config.get("variant"):
            plat += f"/{config['variant']}"
    return config, diff_ids, plat


def attach_diff_ids(
    layers: tuple[LayerInfo, ...], config: dict[str, Any], diff_ids: tuple[str, ...], what: str
) -> tuple[LayerInfo, ...]:
    """Pair manifest layers with config diff ids and history; their counts must agree."""
    if len(layers) != len(diff_ids):
        raise ImageError(
            f"manifest lists {len(layers)} layers but the config has {len(diff_ids)} diff ids",
            subject=what,
        )
    history = [h for h in _list(config.get("history")) if isinstance(h, dict)]
    history = [h for h in history if not h.get("empty_layer")]
    out = []
    for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        created_by = history[i].get("created_by") if i < len(history) else None
        out.append(
            LayerInfo(
                digest=layer.digest,
                diff_id=diff_id,
                media_type=layer.media_type,
                size=layer.size,
                created_by=str(created_by) if created_by else None,
            )
        )
    return tuple(out)


def resolve_manifest(
    top: bytes,
    top_type: str | None,
    fetch: Callable[[dict[str, Any]], bytes],
    platform: str | None,
    what: str,
) -> tuple[dict[str, Any], str]:
    """Follow an index (possibly nested) down to an image manifest; returns it and its digest.

    ``fetch(descriptor)`` returns the digest-checked bytes a descriptor points at.
    """
    data, media_type, digest = top, top_type, sha256_digest(top)
    for _ in range(4):  # indexes may nest; more than a few levels is malformed
        doc = load_json(data, what)
        media_type = str(doc.get("mediaType") or media_type or "")
        if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
            desc = select_from_index(doc, platform, what)
            digest = check_digest_format(desc.get("digest"), what)
            data = fetch(desc)
            media_type = str(desc.get("mediaType") or "")
            continue
        if media_type in MANIFEST_TYPES or (not media_type and "layers" in doc):
            return doc, digest
        if doc.get("schemaVersion") == 1:
            raise ImageError("Docker schema 1 manifests are not supported", subject=what)
        raise ImageError(f"unknown manifest media type {media_type!r}", subject=what)
    raise ImageError("image indexes nest too deeply", subject=what)
