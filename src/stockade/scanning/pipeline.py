"""One scan from end to end: advisory freshness, inventory, matching, the gate, the results store.

The pieces other parts of the scanning pillar provide are reached through :class:`Backend`, one
small adapter (``real_backend()``) over the image reader, the catalogers, the advisory store and
the matcher, so this module stays the only place that knows how they fit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stockade import __version__
from stockade.model import Finding
from stockade.model.progress import NullObserver, Observer
from stockade.scanning import match_cache
from stockade.scanning.gate import Policy, Target, apply_policy
from stockade.scanning.interface import Inventory, Unchecked
from stockade.scanning.results import DatabaseInfo, ScanReport
from stockade.scanning.scan_store import (
    load_inventory,
    load_match,
    record_scan,
    save_inventory,
    save_match,
)
from stockade.store import Store

if TYPE_CHECKING:
    from stockade.scanning.signatures import SignatureCheck, SignatureTrust
    from stockade.scanning.sources.interface import OpenImage
    from stockade.scanning.sources.registry_auth import AuthOptions


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOptions:
    platform: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)  # base64 USER:PASSWORD (AWS ECR)
    aad_token: str | None = field(default=None, repr=False)  # Azure AD token for ACR's exchange
    registry_config: str | None = None  # a docker config.json (default $DOCKER_CONFIG)

    def registry_auth(self) -> AuthOptions:
        from stockade.scanning.sources.registry_auth import AuthOptions

        return AuthOptions(
            username=self.username,
            password=self.password,
            auth_token=self.auth_token,
            aad_token=self.aad_token,
            config=self.registry_config,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanOptions:
    policy: Policy = field(default_factory=Policy)
    max_db_age: timedelta = timedelta(days=7)
    allow_stale_db: bool = False
    image: ImageOptions = field(default_factory=ImageOptions)
    keep_results: bool = True
    signatures: SignatureTrust | None = None  # verify cosign signatures against this trust


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
    build_inventory: Callable[[str, Store, Observer, ImageOptions, OpenImage | None], Inventory]
    match: Callable[[Store, Inventory], MatchOutcome]
    read_sbom: Callable[[str], Inventory]
    # Open an image and read its manifest and config only (no layer): None for dir: and pid:.
    open_image: Callable[[str, ImageOptions], OpenImage | None]
    catalogers_key: Callable[[], str]


def target_of(inv: Inventory) -> Target:
    """The image's identity for VEX: its digests, the reference that was scanned and, for a
    registry reference, the name and tag in it. Never the names an archive, an OCI layout or an
    SBOM gives itself (RepoTags, annotations): whoever wrote the file chose those."""
    img = inv.image
    if img is None:
        return Target(reference=inv.source)
    name, tag = _registry_name(inv.source)
    return Target(
        reference=img.reference or inv.source,
        name=name,
        tag=tag,
        digest=img.manifest_digest,
        config_digest=img.config_digest,
    )


def _registry_name(source: str) -> tuple[str | None, str | None]:
    from stockade.model.errors import StockadeError
    from stockade.scanning.sources.interface import parse_reference

    try:
        ref = parse_reference(source)
    except StockadeError:
        return None, None
    if ref.kind != "registry":
        return None, None
    return f"{ref.host}/{ref.repository}", ref.tag


def evaluate(
    store: Store,
    inv: Inventory,
    options: ScanOptions,
    backend: Backend,
    db: DatabaseInfo,
    matched: MatchOutcome | None = None,
) -> ScanReport:
    """Match an inventory (unless its kept match is given) and run the gate over the findings
    (no layer is read here)."""
    if matched is None:
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
    if options.signatures is not None:
        _registry_only(ref)
    db = backend.check_db(store, options.max_db_age, options.allow_stale_db)
    key = backend.catalogers_key()
    opened = backend.open_image(ref, options.image)  # the manifest is requested once per scan
    pinned = _signed_digests(opened)
    try:
        inv = _kept_inventory(store, ref, opened, key)
        mode = "cached"
        if inv is None:
            inv = backend.build_inventory(
                ref, store, observer or NullObserver(), options.image, opened
            )
            mode = "scan"
    finally:
        if opened is not None:
            opened.close()
    digest = inv.image.manifest_digest if inv.image else None
    match_key = match_cache.match_key(db) if digest else None
    kept = None
    if mode == "cached" and digest and match_key:
        kept = load_match(store, digest, match_key)
    report = evaluate(store, inv, options, backend, db, kept)
    if options.signatures is not None:
        report = replace(report, signatures=verify_signatures(ref, options, pinned))
    if options.keep_results:
        if mode == "scan":  # a kept inventory is already in the store, made by these catalogers
            save_inventory(store, inv, catalogers=key)
        if digest and match_key and kept is None:
            save_match(store, digest, match_key, _outcome_of(report))
        record_scan(store, report, reference=ref, mode=mode, started_at=started)
    return report


def _outcome_of(report: ScanReport) -> MatchOutcome:
    """What the matcher found, as the gate received it (suppressed findings included)."""
    return MatchOutcome(
        findings=tuple(g.finding for g in report.gate.findings),
        skipped=report.match_skipped,
        unchecked=report.unchecked,
    )


def _registry_only(ref: str) -> None:
    from stockade.model.errors import UsageError

    if _registry_name(ref)[0] is None:
        raise UsageError(
            "signatures are verified for registry images only (HOST[:PORT]/REPO[:TAG|@DIGEST]); "
            f"{ref!r} is not one"
        )


def _signed_digests(opened: OpenImage | None) -> tuple[str, ...]:
    """The digests a signature of the scanned image may name, as this scan read them: the
    manifest or index the reference named, then the platform's manifest chosen from an index."""
    if opened is None:
        return ()
    found = (opened.resolved.reference_digest, opened.info.manifest_digest)
    return tuple(dict.fromkeys(d for d in found if d))


def verify_signatures(
    ref: str, options: ScanOptions, digests: tuple[str, ...] = ()
) -> SignatureCheck:
    """The cosign signatures of the image ``ref`` names, with the scan's registry settings: of
    ``digests`` (what the scan read, so the tag is not resolved again) when given."""
    from stockade.scanning.signatures import verify_reference

    assert options.signatures is not None
    img = options.image
    return verify_reference(
        ref,
        options.signatures,
        insecure=img.insecure,
        username=img.username,
        password=img.password,
        auth=img.registry_auth(),
        digests=digests,
    )


def _kept_inventory(store: Store, ref: str, opened: OpenImage | None, key: str) -> Inventory | None:
    if opened is None:
        return None
    info = opened.info
    if not info.manifest_digest:
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
    started = datetime.now(UTC)
    db = backend.check_db(store, options.max_db_age, options.allow_stale_db)
    inv = backend.read_sbom(path)
    report = evaluate(store, inv, options, backend, db)
    if options.keep_results:
        record_scan(store, report, reference=path, mode="sbom", started_at=started)
    return report


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


def real_backend() -> Backend:
    """The backend made of the real image reader, catalogers, advisory store and matcher."""
    from stockade.scanning import backend_adapters as a

    return Backend(
        check_db=a.check_db,
        build_inventory=a.build_inventory,
        match=a.match,
        read_sbom=a.read_sbom,
        open_image=a.open_image,
        catalogers_key=a.catalogers_key,
    )
