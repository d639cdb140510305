"""The scan store as the admission webhook's vulnerability source (``admission.interface.VulnSource``).

A reference scanned before answers from its latest stored run. A reference never scanned is scanned
on demand through a bounded :class:`~stockade.scanning.scan_queue.ScanQueue`; the review waits at
most what is left of its deadline, and a scan that takes longer keeps running so the next review
of that image finds its result. A review starts at most ``max_scans_per_review`` scans; images past
that cap, and images refused by a full queue, are undecided (``LookupUnavailable``: the policy's
failurePolicy applies).

Only registry references (``HOST[:PORT]/REPO[:TAG|@DIGEST]``) are looked up: a pod's ``image:`` is
someone else's text, and ``dir:/`` or ``docker-archive:/a/fifo`` must never open a local path. Docker
Hub's familiar names are the references the kubelet pulls (``nginx:1.27`` is
``docker.io/library/nginx:1.27``), and a scan stored under any spelling of the image answers. An
on-demand scan reaches only the registries allowed (host globs; none given: any) with the same
settings as ``stockade scan image`` (``--insecure`` for loopback, credentials).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import select

from stockade.admission.interface import (
    ImageVulns,
    LookupBudget,
    LookupUnavailable,
    SignatureRequirement,
    SignatureVerdict,
    reference_spellings,
)
from stockade.model import Severity
from stockade.model.errors import RegistryError, UsageError
from stockade.scanning.scan_queue import QueueFull, ScanQueue
from stockade.scanning.scan_store import coverage_of
from stockade.scanning.scan_tables import scan_images, scan_runs
from stockade.scanning.sources.interface import parse_registry_reference, pod_image_reference
from stockade.store import Store
from stockade.store.tables import findings

if TYPE_CHECKING:
    from stockade.scanning.pipeline import ImageOptions
    from stockade.scanning.signatures import SignatureTrust

_VERDICT_TTL = 60.0  # a tag may be moved to another digest: verdicts are kept briefly
_MAX_PENDING_VERIFICATIONS = 16


class StoreVulnSource:
    def __init__(
        self,
        store: Store,
        *,
        scan_on_demand: bool = True,
        workers: int = 2,
        queue: int = 8,
        max_scans_per_review: int = 4,
        scan_timeout: float = 60.0,
        image_options: ImageOptions | None = None,
        registries: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.scan_on_demand = scan_on_demand
        self.max_scans_per_review = max_scans_per_review
        self.image_options = image_options  # registry settings, as `scan image` takes them
        self.registries = tuple(registries)  # host globs an on-demand scan may reach; empty: any
        if image_options is not None and image_options.username and not self.registries:
            # A pod names any host it likes: credentials go only to registries listed by name.
            raise UsageError("--username needs --scan-registry (the registries it is for)")
        self.scans = ScanQueue(
            self._run_scan, workers=workers, queue=queue, scan_timeout=scan_timeout
        )
        self._verifier = ThreadPoolExecutor(workers, thread_name_prefix="admission-signatures")
        self._lock = threading.Lock()
        self._pending = 0
        self._trusts: dict[SignatureRequirement, SignatureTrust] = {}
        self._verdicts: dict[tuple[str, SignatureRequirement], tuple[float, SignatureVerdict]] = {}

    def is_ready(self, image: str) -> bool:
        return False  # answers come from the database

    def saturation(self) -> str | None:
        return self.scans.saturation() if self.scan_on_demand else None

    def _may_reach(self, host: str) -> None:
        if self.registries and not any(
            fnmatch.fnmatchcase(host.lower(), p.lower()) for p in self.registries
        ):
            raise RegistryError(f"registry {host} is not one admission may scan (--scan-registry)")

    def summary(self, image: str, *, budget: LookupBudget) -> ImageVulns | None:
        # UsageError for dir:, docker-archive:, ...; nginx:1.27 is docker.io/library/nginx:1.27
        image = pod_image_reference(image)
        host = parse_registry_reference(image).host
        stored = self.stored(image)
        if stored is not None or not self.scan_on_demand:
            return stored
        self._may_reach(host)
        if not budget.take_scan(self.max_scans_per_review):
            raise LookupUnavailable(
                f"not scanned: this review already started {self.max_scans_per_review} "
                "on-demand scans (the cap per review)"
            )
        try:
            future, _ = self.scans.submit(image)
        except QueueFull as exc:
            raise LookupUnavailable(f"not scanned: {exc}") from None
        try:
            future.result(timeout=budget.remaining())
        except FutureTimeout:
            return ImageVulns(image=image, scanned=False)
        return self.stored(image)

    def known_images(self, limit: int) -> list[str]:
        """References with a stored scan, the latest scanned first (to warm a cache)."""
        with self.store.connect() as conn:
            return list(
                conn.execute(
                    select(scan_images.c.reference)
                    .where(scan_images.c.last_run_id.is_not(None))
                    .order_by(scan_images.c.last_scanned.desc())
                    .limit(limit)
                ).scalars()
            )

    def stored(self, image: str) -> ImageVulns | None:
        """The summary of the image's latest stored scan, or None if it was never scanned."""
        spellings = reference_spellings(image)
        with self.store.connect() as conn:
            # the pod's own spelling first, else the latest scan of the same image written
            # another way (scanned as docker.io/library/nginx:1.27, run as nginx:1.27)
            scanned = conn.execute(
                select(scan_images.c.reference, scan_images.c.last_run_id)
                .where(scan_images.c.reference.in_(spellings))
                .where(scan_images.c.last_run_id.is_not(None))
                .order_by(scan_images.c.last_scanned.desc())
            ).all()
            if not scanned:
                return None
            run_id = next((r for ref, r in scanned if ref == image), scanned[0][1])
            rows = conn.execute(
                select(findings.c.finding_id, findings.c.severity, findings.c.details).where(
                    findings.c.run_id == run_id
                )
            ).all()
            run = (
                conn.execute(
                    select(scan_runs.c.packages, scan_runs.c.unchecked).where(
                        scan_runs.c.id == run_id
                    )
                )
                .mappings()
                .first()
            )
        coverage = coverage_of(run) if run is not None else None
        counts: dict[Severity, int] = {}
        fixable: dict[Severity, int] = {}
        ids: set[str] = set()
        max_cvss: float | None = None
        for finding_id, severity, details in rows:
            sev = Severity.parse(severity)
            counts[sev] = counts.get(sev, 0) + 1
            d = details or {}
            if d.get("fix_state") == "fixed":
                fixable[sev] = fixable.get(sev, 0) + 1
            ids.add(finding_id)
            ids.update(d.get("aliases") or ())
            score = d.get("cvss_score")
            if isinstance(score, (int, float)):
                max_cvss = score if max_cvss is None else max(max_cvss, float(score))
        return ImageVulns(
            image=image,
            counts=counts,
            fixable_counts=fixable,
            ids=frozenset(ids),
            max_cvss=max_cvss,
            unchecked=tuple(coverage.lines()) if coverage is not None else (),
        )

    def signatures(
        self, image: str, requirement: SignatureRequirement, *, budget: LookupBudget
    ) -> SignatureVerdict:
        """Verify the cosign signatures of the digest ``image`` names now, in a worker thread;
        waits what is left of the review's budget (a slower verification still fills the cache)."""
        image = pod_image_reference(image)
        self._may_reach(parse_registry_reference(image).host)
        key = (image, requirement)
        with self._lock:
            hit = self._verdicts.get(key)
            if hit is not None and time.monotonic() - hit[0] < _VERDICT_TTL:
                return hit[1]
            if self._pending >= _MAX_PENDING_VERIFICATIONS:
                raise LookupUnavailable("signature verifications are saturated")
            self._pending += 1
        future = self._verifier.submit(self._verify, image, requirement)
        try:
            return future.result(timeout=budget.remaining())
        except FutureTimeout:
            raise LookupUnavailable(
                f"the signatures of {image} were not verified within the review's budget"
            ) from None

    def _verify(self, image: str, requirement: SignatureRequirement) -> SignatureVerdict:
        from stockade.scanning.signatures import verify_reference
        from stockade.scanning.sources.registry import is_loopback

        try:
            trust = self._trust(requirement)
            opts = self.image_options
            host = parse_registry_reference(image).host
            check = verify_reference(
                image,
                trust,
                insecure=bool(opts and opts.insecure and is_loopback(host)),
                username=opts.username if opts else None,
                password=opts.password if opts else None,
            )
            verdict = SignatureVerdict(image=image, signed=check.signed, summary=check.summary())
            with self._lock:
                self._verdicts[(image, requirement)] = (time.monotonic(), verdict)
            return verdict
        finally:
            with self._lock:
                self._pending -= 1

    def _trust(self, requirement: SignatureRequirement) -> SignatureTrust:
        from stockade.scanning.signatures import Identity, load_trust

        with self._lock:
            known = self._trusts.get(requirement)
        if known is None:
            known = load_trust(
                keys=requirement.keys,
                identities=[Identity(subject=s, issuer=i) for s, i in requirement.identities],
                roots=requirement.fulcio_roots,
                intermediates=requirement.fulcio_intermediates,
                rekor_keys=requirement.rekor_keys,
            )
            with self._lock:
                self._trusts[requirement] = known
        return known

    def _run_scan(self, image: str) -> None:
        from stockade.scanning.pipeline import ScanOptions, real_backend, scan_image
        from stockade.scanning.sources.registry import is_loopback

        options = ScanOptions()
        if self.image_options is not None:
            # Plain HTTP (--insecure) is for loopback registries; every other one stays HTTPS.
            host = parse_registry_reference(image).host
            insecure = self.image_options.insecure and is_loopback(host)
            options = ScanOptions(image=replace(self.image_options, insecure=insecure))
        scan_image(self.store, image, options, real_backend())
