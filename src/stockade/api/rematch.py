"""New advisory data for the images that run: the controller matches them again by itself.

Advisories imported into the controller's store (``stockade db import|update --db URL``) raise
its build time. :class:`AdvisoryRematch`, singleton work on the leader, then matches the stored
inventory (kept by ``stockade scan`` and the registry watch on that store) of every image a
running workload uses again, without reading a layer
(:func:`stockade.scanning.pipeline.rematch_stored`): the re-match is a scan run like any other,
and a ``scan.completed`` event naming the workloads running the image, which the response rules
take as they take an uploaded scan summary (:class:`stockade.api.responses.ControllerResponder`).
So a rule with vulnerability criteria quarantines a workload the new advisories made meet them,
and its event names the rule.

An image already matched against the current advisory build is left alone, so a controller that
restarts, or a new leader, matches nothing twice. The running workloads are those the controller
knows (``namespace/name`` -> image reference or digest: scan summaries and the known images).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import select

from stockade.model import Event, StockadeError
from stockade.scanning.advisory_tables import adv_meta
from stockade.scanning.report_event import scan_completed_event
from stockade.scanning.scan_store import image_digest, load_inventory
from stockade.store import Store

log = logging.getLogger("stockade.api")

DEFAULT_INTERVAL = 60.0  # seconds between two looks at the advisory build time


def advisory_build(store: Store) -> datetime | None:
    """When the store's advisory data was last (re)built; None before any import."""
    with store.connect() as conn:
        built = conn.execute(select(adv_meta.c.value).where(adv_meta.c.key == "built_at")).scalar()
    if not built:
        return None
    at = datetime.fromisoformat(str(built))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _digest_of(store: Store, ref: str) -> str | None:
    if "@" in ref:
        return ref.rsplit("@", 1)[1]
    if ref.startswith("sha256:"):
        return ref
    return image_digest(store, ref)


@dataclass(kw_only=True)
class AdvisoryRematch:
    """Match the running images again when the advisory data changed; call it every
    ``interval`` seconds. Returns the digests it matched again."""

    store: Store
    running: Callable[[], Mapping[str, str]]  # namespace/name -> image reference or digest
    sink: Callable[[Event], None]  # stores the scan.completed event and hands it to the rules
    interval: float = DEFAULT_INTERVAL
    name: str = "advisory-rematch"
    _seen: datetime | None = field(default=None, init=False)

    def __call__(self) -> list[str]:
        built = advisory_build(self.store)
        if built is None or built == self._seen:
            return []
        by_digest: dict[str, dict[str, str]] = {}
        for workload, ref in sorted(self.running().items()):
            digest = _digest_of(self.store, ref)
            if digest:
                by_digest.setdefault(digest, {})[workload] = ref
        done = []
        for digest, workloads in by_digest.items():
            stored = load_inventory(self.store, digest)
            if stored is None or stored.matched_db_built == built:
                continue
            try:
                self.sink(self._rematch(digest, workloads, built))
            except StockadeError as exc:  # one image's trouble does not hold up the others
                log.warning("re-matching %s after new advisories failed: %s", digest, exc)
                continue
            done.append(digest)
        self._seen = built  # every running image is matched against this build now
        return done

    def _rematch(self, digest: str, workloads: Mapping[str, str], built: datetime) -> Event:
        from stockade.scanning.pipeline import ScanOptions, real_backend, rematch_stored
        from stockade.scanning.results import DatabaseInfo

        # the reference a workload names it by, with a tag when one does (the run's target)
        refs = sorted(workloads.values(), key=lambda r: ("@" in r or r.startswith("sha256:"), r))
        reference = refs[0] if not refs[0].startswith("sha256:") else digest
        report = rematch_stored(
            self.store,
            digest,
            reference,
            ScanOptions(),
            real_backend(),
            DatabaseInfo(built=built, sources=("controller",)),
        )
        if report is None:  # the inventory went away meanwhile
            raise StockadeError(f"no stored inventory for {digest}")
        event = scan_completed_event(report)
        log.warning(
            "new advisories: %s matched again for %d running workloads",
            reference,
            len(workloads),
        )
        return replace(
            event,
            source="controller",
            message=f"advisory update: {event.message}",
            data={**event.data, "images": dict(workloads), "rematched": True},
        )
