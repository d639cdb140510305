"""One scan from end to end: advisory freshness, inventory, matching, the gate, the results store.

The pieces other parts of the scanning pillar provide are reached through :class:`Backend`, one
small adapter (``real_backend()``) over the image reader, the catalogers, the advisory store and
the matcher, so this module stays the only place that knows how they fit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from stockade import __version__
from stockade.model import Finding
from stockade.model.progress import NullObserver, Observer
from stockade.scanning.gate import Policy, Target, apply_policy
from stockade.scanning.interface import ImageInfo, Inventory, Unchecked
from stockade.scanning.results import DatabaseInfo, ScanReport
from stockade.scanning.scan_store import load_inventory, record_scan, save_inventory
from stockade.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOptions:
    platform: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    policy: Policy = field(default_factory=Policy)
    max_db_age: timedelta = timedelta(days=7)
    allow_stale_db: bool = False
    image: ImageOptions = field(default_factory=ImageOptions)
    keep_results: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchOutcome:
    """What matching an inventory tells the pipeline."""

    findings: Sequence[Finding]
    skipped: Sequence[str] = ()  # single packages that could not be checked, with reasons
    unchecked: Sequence[Unchecked] = ()  # whole releases or ecosystems without advisory data


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """The functions a scan needs from the rest of the pillar."""

    check_db: Callable[[Store, timedelta, bool], DatabaseInfo]
    build_inventory: Callable[[str, Store, Observer, ImageOptions], Inventory]
    match: Callable[[Store, Inventory], MatchOutcome]
    read_sbom: Callable[[str], Inventory]
    # The image's manifest and config only (no layer): None for dir: and pid: sources.
    resolve_image: Callable[[str, ImageOptions], ImageInfo | None]
    catalogers_key: Callable[[], str]


def target_of(inv: Inventory) -> Target:
    img = inv.image
    if img is None:
        return Target(reference=inv.source)
    return Target(
        reference=img.reference or inv.source,
        name=img.name,
        tag=img.tag,
        digest=img.manifest_digest,
        config_digest=img.config_digest,
    )


def evaluate(
    store: Store,
    inv: Inventory,
    options: ScanOptions,
    backend: Backend,
    db: DatabaseInfo,
) -> ScanReport:
    """Match an inventory and run the gate over the findings (no layer is read here)."""
    matched = backend.match(store, inv)
    gate = apply_policy(matched.findings, options.policy, target_of(inv))
    return ScanReport(
        inventory=inv,
        match_skipped=tuple(matched.skipped),
        unchecked=tuple(matched.unchecked),
        gate=gate,
        scanned_at=datetime.now(UTC),
        database=db,
        tool_version=__version__,
    )


def scan_image(
    store: Store,
    ref: str,
    options: ScanOptions,
    backend: Backend,
    observer: Observer | None = None,
) -> ScanReport:
    """Scan an image reference (registry, docker-archive:, oci:) or a dir:/pid: source.

    An image whose manifest digest was inventoried before by the same catalogers is not read
    again: its kept inventory is matched (that is what makes a re-scan cheap)."""
    started = datetime.now(UTC)
    db = backend.check_db(store, options.max_db_age, options.allow_stale_db)
    key = backend.catalogers_key()
    inv = _kept_inventory(store, ref, options, backend, key)
    mode = "cached"
    if inv is None:
        inv = backend.build_inventory(ref, store, observer or NullObserver(), options.image)
        mode = "scan"
    report = evaluate(store, inv, options, backend, db)
    if options.keep_results:
        save_inventory(store, inv, catalogers=key)
        record_scan(store, report, reference=ref, mode=mode, started_at=started)
    return report


def _kept_inventory(
    store: Store, ref: str, options: ScanOptions, backend: Backend, key: str
) -> Inventory | None:
    info = backend.resolve_image(ref, options.image)
    if info is None or not info.manifest_digest:
        return None
    stored = load_inventory(store, info.manifest_digest)
    if stored is None or stored.catalogers != key:
        return None
    return replace(
        stored.inventory,
        source=ref,
        image=info,
        read_layers=0,
        cached_layers=len(info.layers),
    )


def scan_sbom(store: Store, path: str, options: ScanOptions, backend: Backend) -> ScanReport:
    db = backend.check_db(store, options.max_db_age, options.allow_stale_db)
    inv = backend.read_sbom(path)
    return evaluate(store, inv, options, backend, db)


def rematch_stored(
    store: Store,
    digest: str,
    reference: str,
    options: ScanOptions,
    backend: Backend,
    db: DatabaseInfo,
    *,
    mode: str = "rematched",
) -> ScanReport | None:
    """Match a stored inventory again (after new advisories) without reading any layer."""
    stored = load_inventory(store, digest)
    if stored is None:
        return None
    inv = _with_reference(stored.inventory, reference)
    started = datetime.now(UTC)
    report = evaluate(store, inv, options, backend, db)
    record_scan(store, report, reference=reference, mode=mode, started_at=started)
    return report


def _with_reference(inv: Inventory, reference: str) -> Inventory:
    """A stored inventory seen under another tag: same packages, the tag it was found under."""
    if inv.image is None:
        return inv
    tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else inv.image.tag
    image = replace(inv.image, reference=reference, tag=tag)
    return replace(inv, source=reference, image=image, read_layers=0, cached_layers=0)


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``2w``, ``45s``; a bare number is days."""
    from stockade.model.errors import UsageError

    raw = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    unit = raw[-1:] if raw[-1:] in units else "d"
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)") from None
    if value < 0:
        raise UsageError(f"a duration cannot be negative: {text!r}")
    return timedelta(seconds=value * units[unit])


def real_backend() -> Backend:
    """The backend made of the real image reader, catalogers, advisory store and matcher."""
    from stockade.scanning import backend_adapters as a

    return Backend(
        check_db=a.check_db,
        build_inventory=a.build_inventory,
        match=a.match,
        read_sbom=a.read_sbom,
        resolve_image=a.resolve_image,
        catalogers_key=a.catalogers_key,
    )
