"""Writing images: deterministic layer tars and the docker-archive and OCI layout containers.

Used by the sample recipe and by tests that craft images (including hostile ones on purpose).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.scanning.sources.manifest import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME

MTIME = 1_700_000_000
LAYER_MEDIA = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    tar: bytes  # the uncompressed layer
    created_by: str = ""
    compression: str = "gzip"  # how it is stored in OCI layouts: none, gzip, zstd

    @property
    def diff_id(self) -> str:
        return sha(self.tar)

    def blob(self) -> bytes:
        return compress(self.tar, self.compression)

    def blob_digest(self) -> str:
        return sha(self.blob())


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = MTIME
    return info


def tar_from_dir(root: Path) -> bytes:
    """A deterministic tar of ``root``'s content (sorted, root-owned, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            names = sorted(dirnames + filenames)
            for name in names:
                full = os.path.join(dirpath, name)
                arc = name if rel_dir == "." else f"{rel_dir}/{name}"
                if os.path.isdir(full) and not os.path.islink(full):
                    tar.add(full, arcname=arc, recursive=False, filter=_normalize)
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = name if rel_dir == "." else f"{rel_dir}/{name}"
                tar.add(full, arcname=arc, recursive=False, filter=_normalize)
            # symlinks to directories are listed in dirnames by os.walk but not followed
            for name in sorted(dirnames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    arc = name if rel_dir == "." else f"{rel_dir}/{name}"
                    tar.add(full, arcname=arc, recursive=False, filter=_normalize)
    return buf.getvalue()


def tar_from_entries(entries: Sequence[tuple[str, str, bytes | str]]) -> bytes:
    """A tar from (kind, name, payload) rows: kind f (bytes), d, l (target), h (target name).

    Names are written as given, so tests can craft hostile layers.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, payload in entries:
            info = _normalize(tarfile.TarInfo(name))
            if kind == "f":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "c":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info)
    return buf.getvalue()


def image_config(layers: Sequence[Layer], *, os_name: str = "linux", arch: str = "amd64") -> bytes:
    doc: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": layer.created_by} for layer in layers
        ],
    }
    return _json(doc)


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def oci_manifest(config: bytes, layers: Sequence[Layer], blobs: Sequence[bytes]) -> bytes:
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": LAYER_MEDIA[layer.compression],
                    "digest": sha(blob),
                    "size": len(blob),
                }
                for layer, blob in zip(layers, blobs, strict=True)
            ],
        }
    )


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalize(tarfile.TarInfo(name))
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_docker_archive(
    path: Path,
    layers: Sequence[Layer],
    *,
    repo_tag: str,
    oci_style: bool = False,
    config: bytes | None = None,
) -> Path:
    """A ``docker save`` tarball: legacy (``<id>/layer.tar``) or OCI-style (Docker 25+)."""
    config = config if config is not None else image_config(layers)
    cfg_hex = sha(config).split(":")[1]
    repo, _, tag = repo_tag.rpartition(":")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if oci_style:
            plain = [
                Layer(tar=layer.tar, created_by=layer.created_by, compression="none")
                for layer in layers
            ]
            blobs = [layer.tar for layer in layers]
            manifest = oci_manifest(config, plain, blobs)
            layer_names = []
            for blob in blobs:
                name = "blobs/sha256/" + sha(blob).split(":")[1]
                if name not in layer_names:
                    _add(tar, name, blob)
                layer_names.append(name)
            _add(tar, f"blobs/sha256/{cfg_hex}", config)
            _add(tar, "blobs/sha256/" + sha(manifest).split(":")[1], manifest)
            index = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha(manifest),
                        "size": len(manifest),
                        "annotations": {"io.containerd.image.name": repo_tag, REF_NAME: tag},
                    }
                ],
            }
            _add(tar, "index.json", _json(index))
            _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            config_name = f"blobs/sha256/{cfg_hex}"
        else:
            layer_names = []
            for layer in layers:
                name = layer.diff_id.split(":")[1] + "/layer.tar"
                if name not in layer_names:
                    _add(tar, name.replace("layer.tar", "VERSION"), b"1.0")
                    _add(tar, name, layer.tar)
                layer_names.append(name)
            config_name = f"{cfg_hex}.json"
            _add(tar, config_name, config)
        last = layers[-1].diff_id.split(":")[1] if layers else ""
        _add(tar, "repositories", _json({repo: {tag: last}}))
        entry = {"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}
        _add(tar, "manifest.json", _json([entry]))
    return path


def write_oci_layout(
    path: Path,
    images: Sequence[tuple[str, Sequence[Layer], bytes | None]],
    *,
    as_tar: bool = False,
    index_tag: str | None = None,
) -> Path:
    """An OCI layout with one manifest per (tag, layers, config) image.

    With ``index_tag``, the images are grouped under one image index (a multi-platform image) that
    carries that tag; each image's config then decides its platform.
    """
    blobs: dict[str, bytes] = {}
    descriptors = []
    for tag, layers, config in images:
        config = config if config is not None else image_config(layers)
        layer_blobs = [layer.blob() for layer in layers]
        manifest = oci_manifest(config, layers, layer_blobs)
        for blob in [*layer_blobs, config, manifest]:
            blobs[sha(blob)] = blob
        cfg = json.loads(config)
        desc: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": sha(manifest),
            "size": len(manifest),
        }
        if index_tag is not None:
            desc["platform"] = {
                "os": cfg.get("os", "linux"),
                "architecture": cfg.get("architecture", "amd64"),
            }
        else:
            desc["annotations"] = {REF_NAME: tag}
        descriptors.append(desc)
    if index_tag is not None:
        inner = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
        blobs[sha(inner)] = inner
        descriptors = [
            {
                "mediaType": OCI_INDEX,
                "digest": sha(inner),
                "size": len(inner),
                "annotations": {REF_NAME: index_tag},
            }
        ]
    index = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for digest, blob in blobs.items():
        files["blobs/sha256/" + digest.split(":")[1]] = blob
    if as_tar:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(files):
                _add(tar, name, files[name])
        return path
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path
