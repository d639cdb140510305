"""``build_inventory``: from a reference to an :class:`Inventory`.

Images are read layer by layer. Each layer is streamed once (or taken from the layer cache), its
wanted files cataloged on their own; the merge then keeps a package only while its evidence file
(``locations[0]``) is still visible in the final view, and dates it to the first layer in which the
same (type, name, version) appeared.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stockade.model.errors import StoreError, UnsafeImage
from stockade.model.progress import NullObserver, Observer
from stockade.scanning.distro import OS_RELEASE_PATHS, parse_os_release
from stockade.scanning.interface import Cataloger, Distro, FileEntry, Inventory, LayerInfo, Package
from stockade.scanning.layercache import LayerCache, LayerRecord, cataloger_key
from stockade.scanning.layers import Limits, entries_over_budget, read_layer
from stockade.scanning.sources.interface import ImageSource, ResolvedImage, parse_reference
from stockade.scanning.view import MergedView

if TYPE_CHECKING:
    from stockade.scanning.sources.registry_auth import AuthOptions
    from stockade.store import Store

_KEEP_LIMIT = 1024 * 1024  # bytes of a kept file (os-release, symlink targets)
_SYMLINK_MODE = stat.S_IFLNK | 0o777


def build_inventory(
    ref: str,
    *,
    catalogers: Sequence[Cataloger],
    store: Store | None = None,
    observer: Observer | None = None,
    platform: str | None = None,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    auth: AuthOptions | None = None,
    limits: Limits | None = None,
) -> Inventory:
    """Inventory the image or filesystem named by ``ref`` (see :mod:`stockade.scanning.sources`)."""
    parsed = parse_reference(ref)
    observer = observer or NullObserver()
    if not parsed.is_image:
        from stockade.scanning.sources.rootfs import inventory_rootfs

        return inventory_rootfs(
            parsed, catalogers=catalogers, observer=observer, limits=limits or Limits.configured()
        )
    from stockade.scanning.sources import open_source

    source = open_source(parsed, insecure=insecure, username=username, password=password, auth=auth)
    try:
        resolved = source.resolve(platform)
        return inventory_image(
            source, resolved, catalogers=catalogers, store=store, observer=observer, limits=limits
        )
    finally:
        source.close()


def inventory_image(
    source: ImageSource,
    resolved: ResolvedImage,
    *,
    catalogers: Sequence[Cataloger],
    store: Store | None = None,
    observer: Observer | None = None,
    limits: Limits | None = None,
) -> Inventory:
    """Inventory an image whose manifest and config were already read from ``source``."""
    return _ImageScan(
        source,
        resolved,
        list(catalogers),
        store,
        observer or NullObserver(),
        limits or Limits.configured(),
    ).run()


class _ImageScan:
    def __init__(
        self,
        source: ImageSource,
        resolved: ResolvedImage,
        catalogers: list[Cataloger],
        store: Store | None,
        observer: Observer,
        limits: Limits,
    ) -> None:
        self.source = source
        self.resolved = resolved
        self.catalogers = catalogers
        self._wants_each = [c.wants for c in catalogers]
        self.cache = LayerCache(store, cataloger_key(catalogers))
        self.observer = observer
        self.limits = limits
        self.what = resolved.info.reference
        self.budget = limits.max_image_bytes
        self.entries_left = limits.max_image_entries
        self.read_layers = 0
        self.dirty: dict[str, LayerRecord] = {}  # records to write to the cache, by diff id

    def run(self) -> Inventory:
        """The inventory; the layer records read or completed on the way are cached at the end,
        in one transaction (also when a later layer fails: what was read stays useful)."""
        try:
            inventory = self._run()
        except BaseException:
            with contextlib.suppress(StoreError):  # the scan's own error is the one to report
                self.cache.put_many(list(self.dirty.values()))
            raise
        self.cache.put_many(list(self.dirty.values()))
        return inventory

    def _run(self) -> Inventory:
        layers = self.resolved.info.layers
        cached = self.cache.get_many([str(layer.diff_id) for layer in layers])
        records: list[LayerRecord] = []
        for i, layer in enumerate(layers):
            record = cached.get(str(layer.diff_id))
            if record is None:
                record = self._read(i, layer)
                cached[str(layer.diff_id)] = record
                self.dirty[record.diff_id] = record
            else:
                index = record.index
                self.entries_left -= len(index.kinds) + len(index.whiteouts) + len(index.opaque)
                if self.entries_left < 0:
                    raise entries_over_budget(self.limits, self.what)
            records.append(record)
        view = MergedView([r.index for r in records], self.what)
        packages = _merge(records, view)
        packages += self._symlinked(records, view)
        skipped = tuple(s for r in records for s in r.skipped)
        return Inventory(
            source=self.what,
            image=self.resolved.info,
            distro=self._distro(records, view),
            packages=tuple(_date_packages(packages, records)),
            cached_layers=len(layers) - self.read_layers,
            read_layers=self.read_layers,
            skipped=skipped,
        )

    def _wants(self, path: str, mode: int, size: int) -> bool:
        if path in OS_RELEASE_PATHS:
            return True
        for wants in self._wants_each:  # noqa: SIM110 - per file of every layer: no generator
            if wants(path, mode, size):
                return True
        return False

    def _read(self, i: int, layer: LayerInfo) -> LayerRecord:
        what = f"{self.what} layer {i + 1} ({layer.digest})"
        handle = self.observer.task(
            f"layer {i + 1}/{len(self.resolved.info.layers)}", total=layer.size or None
        )
        try:
            with self.source.open_blob(layer) as raw:
                result = read_layer(
                    raw,
                    layer,
                    wants=self._wants,
                    what=what,
                    limits=self.limits,
                    budget=self.budget,
                    entry_budget=self.entries_left,
                    verify_blob_digest=self._verify(layer),
                    on_bytes=lambda n: self.observer.advance(handle, n),
                )
        finally:
            self.observer.finish(handle)
        self.budget -= result.uncompressed_bytes
        self.entries_left -= result.entries
        self.read_layers += 1
        if result.pending_links:
            result.files.extend(self._hard_links(i, layer, result.pending_links))
        kept = {
            f.path: f.data
            for f in result.files
            if f.path in OS_RELEASE_PATHS and f.size <= _KEEP_LIMIT
        }
        packages = run_catalogers(self.catalogers, result.files)
        return LayerRecord(
            diff_id=str(layer.diff_id),
            index=result.index,
            packages=packages,
            skipped=result.skipped,
            kept=kept,
        )

    def _hard_links(
        self, i: int, layer: LayerInfo, pending: list[tuple[str, str, int]]
    ) -> list[FileEntry]:
        """Wanted hard links to files read before anyone wanted them: one more pass for those."""
        targets = {target for _, target, _ in pending}
        with self.source.open_blob(layer) as raw:
            again = read_layer(
                raw,
                layer,
                wants=lambda p, _m, _s: p in targets,
                what=f"{self.what} layer {i + 1} ({layer.digest})",
                limits=self.limits,
                verify_blob_digest=self._verify(layer),
            )
        data = {f.path: f.data for f in again.files}
        return [
            FileEntry(path=path, mode=mode, size=len(data[t]), data=data[t], layer=layer.diff_id)
            for path, t, mode in pending
            if t in data
        ]

    def _verify(self, layer: LayerInfo) -> bool:
        return bool(getattr(self.source, "digest_known", {}).get(layer.digest, True))

    def _fetch(
        self, layer_no: int, paths: set[str], records: list[LayerRecord]
    ) -> dict[str, bytes]:
        """Bytes of files of one layer: from the record, the rest in one targeted re-read."""
        record = records[layer_no]
        found = {p: record.kept[p] for p in paths if p in record.kept}
        missing = paths - found.keys()
        if not missing:
            return found
        wanted = set(missing)
        for path in missing:
            if record.index.kinds.get(path) == "h":
                wanted.add(record.index.links[path])
        layer = self.resolved.info.layers[layer_no]
        with self.source.open_blob(layer) as raw:
            result = read_layer(
                raw,
                layer,
                wants=lambda p, _m, _s: p in wanted,
                what=f"{self.what} layer {layer_no + 1} ({layer.digest})",
                limits=self.limits,
                verify_blob_digest=self._verify(layer),
            )
        for entry in result.files:
            if entry.path in missing:
                found[entry.path] = entry.data
                if len(entry.data) <= _KEEP_LIMIT:
                    record.kept[entry.path] = entry.data
        self.dirty[record.diff_id] = record  # so the next scan needs no blob for these
        return found

    def _distro(self, records: list[LayerRecord], view: MergedView) -> Distro | None:
        for path in OS_RELEASE_PATHS:
            found = view.resolve(path)
            if found is None or found[2] not in ("f", "h"):
                continue
            data = self._fetch(found[1], {found[0]}, records).get(found[0])
            distro = parse_os_release(data) if data is not None else None
            if distro is not None:
                return distro
        return None

    def _symlinked(self, records: list[LayerRecord], view: MergedView) -> list[tuple[int, Package]]:
        """Packages from wanted paths that are symlinks to files no cataloger read as themselves.

        Targets are fetched per layer in one pass, however many links point into that layer.
        """
        requests: list[tuple[str, int, str, int, list[Cataloger]]] = []
        for path, layer_no in view.symlinks():
            wanting = [c for c in self.catalogers if c.wants(path, _SYMLINK_MODE, 0)]
            if not wanting:
                continue
            try:
                found = view.resolve(path)
            except UnsafeImage as exc:
                raise UnsafeImage(f"wanted file {path}: {exc.message}", subject=self.what) from exc
            if found is None or found[2] not in ("f", "h"):
                continue
            real, real_layer, _ = found
            wanting = [c for c in wanting if not c.wants(real, stat.S_IFREG | 0o644, 0)]
            if wanting:  # else the target is cataloged under its own path already
                requests.append((path, layer_no, real, real_layer, wanting))
        by_layer: dict[int, set[str]] = {}
        for _, _, real, real_layer, _ in requests:
            by_layer.setdefault(real_layer, set()).add(real)
        contents = {n: self._fetch(n, paths, records) for n, paths in sorted(by_layer.items())}
        out: list[tuple[int, Package]] = []
        for path, layer_no, real, real_layer, wanting in requests:
            data = contents[real_layer].get(real)
            if data is None:
                continue
            entry = FileEntry(
                path=path, mode=stat.S_IFREG | 0o644, size=len(data), data=data, layer=None
            )
            for package in run_catalogers(wanting, [entry]):
                out.append((max(layer_no, real_layer), package))
        return out


def run_catalogers(catalogers: Sequence[Cataloger], files: Sequence[FileEntry]) -> list[Package]:
    """Give each cataloger the files it wants (and only those)."""
    packages: list[Package] = []
    for cataloger in catalogers:
        mine = [f for f in files if cataloger.wants(f.path, f.mode, f.size)]
        if mine:
            packages.extend(cataloger.catalog(mine))
    return packages


def _merge(records: list[LayerRecord], view: MergedView) -> list[tuple[int, Package]]:
    """Packages whose evidence file is still visible in the final view, with their layer number."""
    kept: list[tuple[int, Package]] = []
    for i, record in enumerate(records):
        for package in record.packages:
            if not package.locations or view.visible(package.locations[0], i):
                kept.append((i, package))
    return kept


def _date_packages(found: list[tuple[int, Package]], records: list[LayerRecord]) -> list[Package]:
    """Set ``layer`` to the first layer that had the same (type, name, version), visible or not."""
    first: dict[tuple[str, str, str], int] = {}
    for i, record in enumerate(records):
        for p in record.packages:
            first.setdefault((p.type, p.name, p.version), i)
    out = []
    seen: set[tuple[str, str, str, tuple[str, ...]]] = set()
    for i, p in found:
        key = (p.type, p.name, p.version, p.locations)
        if key in seen:
            continue
        seen.add(key)
        layer_no = min(i, first.get((p.type, p.name, p.version), i))
        out.append(_with_layer(p, records[layer_no].diff_id))
    return out


def _with_layer(p: Package, diff_id: str) -> Package:
    from dataclasses import replace

    return replace(p, layer=diff_id)
