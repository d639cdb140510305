"""``oci:PATH[:TAG]``: an OCI image layout, as a directory or a tar of one."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from stockade.model.errors import ImageError
from stockade.scanning.interface import ImageInfo, LayerInfo, Readable
from stockade.scanning.sources import manifest as mf
from stockade.scanning.sources.bundle import Bundle, blob_name
from stockade.scanning.sources.interface import ResolvedImage


class OciLayoutSource:
    """Reads ``index.json`` and ``blobs/`` of an OCI layout."""

    def __init__(
        self, path: str, tag: str | None, reference: str, bundle: Bundle | None = None
    ) -> None:
        self.reference = reference
        self.tag = tag
        self.bundle = bundle if bundle is not None else Bundle(path, reference)
        if not self.bundle.exists("index.json"):
            self.bundle.close()
            raise ImageError("not an OCI image layout (no index.json)", subject=reference)

    def read_blob(self, desc: dict[str, Any]) -> bytes:
        digest = mf.check_digest_format(desc.get("digest"), self.reference)
        return read_checked_blob(self.bundle, digest, self.reference)

    def resolve(self, platform: str | None = None) -> ResolvedImage:
        raw_index = self.bundle.read("index.json")
        index = mf.load_json(raw_index, f"{self.reference} index.json")
        desc = self._pick(index)
        if desc is None:  # several untagged entries: the index itself lists the platforms
            top, top_type = raw_index, mf.OCI_INDEX
        else:
            top, top_type = self.read_blob(desc), str(desc.get("mediaType") or "")
        manifest, manifest_digest = mf.resolve_manifest(
            top, top_type, self.read_blob, platform, self.reference
        )
        return resolved_from_manifest(
            manifest,
            manifest_digest,
            lambda d: read_checked_blob(self.bundle, d, self.reference),
            self.reference,
            name=None,
            tag=self.tag,
        )

    def _pick(self, index: dict[str, Any]) -> dict[str, Any] | None:
        manifests = index.get("manifests")
        entries = (
            [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []
        )
        if not entries:
            raise ImageError("index.json lists no manifests", subject=self.reference)
        if self.tag is not None:
            named = [m for m in entries if _ref_name(m) == self.tag]
            if not named:
                tags = sorted(str(_ref_name(m)) for m in entries if _ref_name(m))
                raise ImageError(
                    f"no image tagged {self.tag!r} (tags: {', '.join(tags) or 'none'})",
                    subject=self.reference,
                )
            return named[0]
        if len(entries) == 1:
            return entries[0]
        return None

    def open_blob(self, layer: LayerInfo) -> AbstractContextManager[Readable]:
        name = blob_name(layer.digest)
        if not self.bundle.exists(name):
            raise ImageError(f"missing blob {layer.digest}", subject=self.reference)
        return self.bundle.open(name)

    def close(self) -> None:
        self.bundle.close()


def _ref_name(entry: dict[str, Any]) -> object:
    annotations = entry.get("annotations")
    return annotations.get(mf.REF_NAME) if isinstance(annotations, dict) else None


def read_checked_blob(bundle: Bundle, digest: str, what: str) -> bytes:
    name = blob_name(mf.check_digest_format(digest, what))
    if not bundle.exists(name):
        raise ImageError(f"missing blob {digest}", subject=what)
    data = bundle.read(name)
    mf.check_digest(data, digest, f"{what} blob {digest}")
    return data


def resolved_from_manifest(
    manifest: dict[str, Any],
    manifest_digest: str,
    read_blob: Any,
    what: str,
    *,
    name: str | None,
    tag: str | None,
) -> ResolvedImage:
    """Read the config a manifest points at and pair its diff ids with the layers."""
    config_digest, layers = mf.parse_manifest(manifest, what)
    config, diff_ids, plat = mf.parse_config(read_blob(config_digest), f"{what} config")
    layers = mf.attach_diff_ids(layers, config, diff_ids, what)
    info = ImageInfo(
        reference=what,
        name=name,
        tag=tag,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        platform=plat,
        layers=layers,
    )
    return ResolvedImage(info=info, diff_ids=diff_ids, config=config)
