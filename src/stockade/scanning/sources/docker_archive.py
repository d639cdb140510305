"""``docker-archive:PATH``: a ``docker save`` tarball.

Two shapes exist. Legacy (Docker < 25): ``manifest.json`` names ``<config-hex>.json`` and
``<id>/layer.tar`` files, with a ``repositories`` file beside it. OCI-style (Docker 25+): the same
``manifest.json`` names ``blobs/sha256/<hex>`` files of an OCI layout (``index.json``,
``oci-layout``). Both are read through ``manifest.json``; an archive that has only ``index.json``
is read as an OCI layout.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from stockade.model.errors import ImageError
from stockade.scanning.interface import ImageInfo, LayerInfo, Readable
from stockade.scanning.sources import manifest as mf
from stockade.scanning.sources.bundle import Bundle
from stockade.scanning.sources.interface import ResolvedImage

if TYPE_CHECKING:
    from stockade.scanning.sources.oci_layout import OciLayoutSource

LEGACY_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar"


class DockerArchiveSource:
    """Reads one image (the first, or the one tagged ``tag``) of a ``docker save`` archive."""

    def __init__(self, path: str, reference: str, tag: str | None = None) -> None:
        self.reference = reference
        self.tag = tag
        self.bundle = Bundle(path, reference)
        if not self.bundle.is_tar:
            self.bundle.close()
            raise ImageError(
                "a docker archive must be a tar file (use oci: for a directory)", subject=reference
            )
        self._names: dict[str, str] = {}  # layer digest -> member name
        self.digest_known: dict[str, bool] = {}
        self._oci: OciLayoutSource | None = (
            None  # set when the archive turns out to be a plain OCI layout tar
        )

    def resolve(self, platform: str | None = None) -> ResolvedImage:
        if not self.bundle.exists("manifest.json"):
            if self.bundle.exists("index.json"):  # an OCI archive named as a docker archive
                from stockade.scanning.sources.oci_layout import OciLayoutSource

                self._oci = OciLayoutSource("", self.tag, self.reference, bundle=self.bundle)
                return self._oci.resolve(platform)
            if self.bundle.exists("repositories"):
                raise ImageError(
                    "pre-1.10 docker save format (no manifest.json) is not supported",
                    subject=self.reference,
                )
            raise ImageError("not a docker archive (no manifest.json)", subject=self.reference)
        entries = mf.parse_json(
            self.bundle.read("manifest.json"), f"{self.reference} manifest.json"
        )
        if (
            not isinstance(entries, list)
            or not entries
            or not all(isinstance(e, dict) for e in entries)
        ):
            raise ImageError("manifest.json lists no images", subject=self.reference)
        entry = self._pick(entries)
        config_name = entry.get("Config")
        if not isinstance(config_name, str):
            raise ImageError("manifest.json entry has no Config", subject=self.reference)
        config_digest = _digest_from_name(config_name, self.reference)
        config_bytes = self.bundle.read(config_name)
        mf.check_digest(config_bytes, config_digest, f"{self.reference} config")
        config, diff_ids, plat = mf.parse_config(config_bytes, f"{self.reference} config")
        layers = self._layers(entry, diff_ids)
        layers = mf.attach_diff_ids(layers, config, diff_ids, self.reference)
        name, tag = _name_tag(entry)
        info = ImageInfo(
            reference=self.reference,
            name=name,
            tag=tag,
            manifest_digest=self._manifest_digest(),
            config_digest=config_digest,
            platform=plat,
            layers=layers,
        )
        return ResolvedImage(info=info, diff_ids=diff_ids, config=config)

    def _pick(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.tag is None:
            return entries[0]
        for entry in entries:
            tags = entry.get("RepoTags")
            tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            if any(t == self.tag or t.endswith(":" + self.tag) for t in tags):
                return entry
        raise ImageError(f"no image tagged {self.tag!r} in the archive", subject=self.reference)

    def _layers(self, entry: dict[str, Any], diff_ids: tuple[str, ...]) -> tuple[LayerInfo, ...]:
        names = entry.get("Layers")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ImageError("manifest.json entry has no Layers list", subject=self.reference)
        if len(names) != len(diff_ids):
            raise ImageError(
                f"manifest.json lists {len(names)} layers, the config {len(diff_ids)} diff ids",
                subject=self.reference,
            )
        out = []
        for name, diff_id in zip(names, diff_ids, strict=True):
            if not self.bundle.exists(name):
                raise ImageError(f"missing layer {name}", subject=self.reference)
            known = name.startswith("blobs/sha256/")
            # A legacy layer.tar is the uncompressed layer: its digest is the diff id.
            digest = _digest_from_name(name, self.reference) if known else diff_id
            self._names[digest] = name
            self.digest_known[digest] = known
            out.append(
                LayerInfo(
                    digest=digest,
                    diff_id=None,
                    media_type=LEGACY_LAYER_TYPE,
                    size=self.bundle.size(name),
                )
            )
        return tuple(out)

    def _manifest_digest(self) -> str | None:
        """The OCI manifest digest, when the archive carries one (OCI-style saves)."""
        if not self.bundle.exists("index.json"):
            return None
        try:
            index = mf.load_json(self.bundle.read("index.json"), self.reference)
            first = (index.get("manifests") or [{}])[0]
            return mf.check_digest_format(first.get("digest"), self.reference)
        except (ImageError, IndexError, AttributeError):
            return None  # the manifest digest is informative only here

    def open_blob(self, layer: LayerInfo) -> AbstractContextManager[Readable]:
        if self._oci is not None:
            return self._oci.open_blob(layer)
        name = self._names.get(layer.digest)
        if name is None:
            raise ImageError(f"missing layer {layer.digest}", subject=self.reference)
        return self.bundle.open(name)

    def close(self) -> None:
        self.bundle.close()


def _digest_from_name(name: str, what: str) -> str:
    """``blobs/sha256/<hex>`` or ``<hex>.json`` -> ``sha256:<hex>``."""
    base = name.rsplit("/", 1)[-1].removesuffix(".json")
    return mf.check_digest_format(f"sha256:{base}", f"{what} {name}")


def _name_tag(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    tags = entry.get("RepoTags")
    if not isinstance(tags, list) or not tags or not isinstance(tags[0], str):
        return None, None
    name, sep, tag = tags[0].rpartition(":")
    if not sep or "/" in tag:
        return tags[0], None
    return name, tag
