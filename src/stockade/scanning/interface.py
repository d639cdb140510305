"""The values that cross the scanning pillar's internal boundaries, and the cataloger contract.

Flow: a *source* (docker-archive, oci, registry, dir, pid) yields layers or a root filesystem; the
*layer reader* streams each layer once and hands every file a cataloger ``wants`` to it as a
:class:`FileEntry`; *catalogers* turn those files into :class:`Package` values; the per-layer
results are cached by layer digest and merged in layer order (whiteouts and overridden files drop
packages); the result is an :class:`Inventory`.

Some cataloger results are pseudo-packages that ride the same per-layer cache and merge rules:
types ``os-release``, ``deb-copyright`` and ``skipped``. After the merge, callers pass the
inventory through :func:`stockade.scanning.catalogers.finalize` (idempotent), which resolves them
(distro, deb licenses, OS purl qualifiers, skipped reasons) and removes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stockade.model import Details


class Readable(Protocol):
    """A byte stream that is only ever read from: a layer blob, a decompressor, a guard."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Package:
    """One installed package. ``type`` uses syft's names so inventories compare one to one."""

    type: str  # "deb", "apk", "rpm", "python", "npm", "go-module", "java-archive"
    name: str
    version: str
    purl: str = ""
    licenses: tuple[str, ...] = ()
    # Absolute paths of the evidence files inside the image. The first one decides visibility: the
    # merge drops the package when a later layer overrides, whites out or hides that file.
    locations: tuple[str, ...] = ()
    layer: str | None = None  # diff id (sha256:...) of the layer where the package first appeared
    source_name: str | None = None  # OS packages: dpkg Source, apk origin, rpm source RPM name
    source_version: str | None = None
    arch: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # extra facts: maven group, go toolchain, ...

    def meta(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.metadata:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True, kw_only=True)
class Distro:
    """The OS of an image, from os-release."""

    id: str  # "debian", "alpine", "rhel", "ubuntu"
    version_id: str  # "12", "3.19.1", "9.3"
    name: str = ""
    version_codename: str = ""
    pretty_name: str = ""
    id_like: tuple[str, ...] = ()
    # The Ubuntu FIPS streams the image's apt sources follow ("fips", "fips-updates",
    # "fips-preview"; see catalogers.apt_sources). Empty: none named (sources removed, as
    # ``pro detach`` does): the FIPS builds are matched against every stream.
    fips_streams: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerInfo:
    digest: str  # the blob digest as stored (compressed), sha256:...
    diff_id: str | None  # the uncompressed digest from the image config
    media_type: str
    size: int
    created_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInfo:
    reference: str  # what the user typed
    name: str | None = None  # repository name, when known (registry host/repo, or a RepoTag)
    tag: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    platform: str | None = None  # "linux/amd64"
    layers: tuple[LayerInfo, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """Everything the catalogers found in one image or filesystem."""

    source: str  # the REF as given: docker-archive:..., oci:..., host/repo:tag, dir:..., pid:...
    image: ImageInfo | None = None
    distro: Distro | None = None
    packages: tuple[Package, ...] = ()
    cached_layers: int = 0  # how many layers came from the layer cache
    read_layers: int = 0  # how many layers were read from their blobs
    skipped: tuple[str, ...] = field(default=())  # things that could not be cataloged, with reasons


@dataclass(frozen=True, slots=True, kw_only=True)
class Unchecked:
    """Packages of one distribution release or ecosystem that were not checked at all (no advisory
    data for it in the store, or no way to look them up): a scan says nothing about them."""

    ecosystem: str  # "debian:12", "pypi"; the package type or distro when no ecosystem is known
    packages: int
    reason: str

    def line(self) -> str:
        return f"{self.packages} {self.ecosystem} package(s) not checked: {self.reason}"

    def to_dict(self) -> dict[str, str | int]:
        return {"ecosystem": self.ecosystem, "packages": self.packages, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One file handed to a cataloger, with its bytes (read once, bounded by the layer reader)."""

    path: str  # absolute, normalized: "/var/lib/dpkg/status"
    mode: int
    size: int
    data: bytes
    layer: str | None = None  # diff id of the layer the file came from; None for a live rootfs


class Cataloger(Protocol):
    """Finds one kind of package. Pure: no I/O beyond the bytes it is given."""

    name: str  # "dpkg"
    version: int  # bump when output changes: part of the layer-cache key

    def wants(self, path: str, mode: int, size: int) -> bool:
        """Cheap test on a path (and mode, size) whether this cataloger needs the file's bytes."""
        ...

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        """Packages found in the wanted files of one layer (or of one root filesystem)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class VulnerabilityDetails(Details):
    """Per-finding facts of a vulnerability (``Finding.details`` for the scanning pillar)."""

    package: str
    package_type: str
    installed_version: str
    fixed_version: str | None
    fix_state: str  # "fixed", "not-fixed", "wont-fix", "unknown"
    aliases: tuple[str, ...] = ()
    cvss_score: float | None = None
    cvss_vector: str | None = None
    purl: str = ""
    locations: tuple[str, ...] = ()
    layer: str | None = None
    data_source: str = ""  # "osv:PyPI", "debian-tracker", "alpine-secdb"
    urls: tuple[str, ...] = ()
