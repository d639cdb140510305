"""New vulnerability facts in the controller's store for the images that run: the response rules
see them without anyone uploading a summary.

:class:`ScanRunWatch` is singleton work on the leader, every ``interval`` seconds:

1. **Advisory updates.** Advisories imported into the store (``stockade db import|update --db
   URL``) raise its build time. When it changed, the stored inventory (kept by ``stockade scan``
   and the registry watch on that store) of every image a running workload uses and that was
   matched against an older build is matched again, without reading a layer
   (:func:`stockade.scanning.pipeline.rematch_stored`): a new scan run.
2. **New scan runs.** Every scan run stored since the last pass (a re-match above, a registry
   watch re-scanning, a ``stockade scan --db`` on the controller's store) of an image a running
   workload uses becomes a ``scan.completed`` event naming those workloads, which the response
   rules take as they take an uploaded scan summary
   (:class:`stockade.api.responses.ControllerResponder`): a rule with vulnerability criteria the
   image now meets quarantines the workload, and its event names the rule.

Where the last pass stopped is kept in the store (``controller_cursors``, row ``scan-runs``: the
newest run's time, in microseconds), so a restart or a new leader neither misses a run nor makes
one's event twice. Runs are taken once they are ``SETTLE`` old: a run's findings are written just
after its row. The running workloads are those the controller knows (``namespace/name`` -> image
reference or digest: scan summaries and the known images).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from stockade.api.responses import ScanSummary, scan_event
from stockade.api.results import fixable
from stockade.api.tables import cursors
from stockade.model import Event, Severity, StockadeError
from stockade.scanning.advisory_tables import adv_meta
from stockade.scanning.scan_store import SEVERITIES, image_digest, load_inventory
from stockade.scanning.scan_tables import scan_runs
from stockade.store import Store
from stockade.store.tables import findings

log = logging.getLogger("stockade.api")

DEFAULT_INTERVAL = 60.0  # seconds between two passes
SETTLE = timedelta(seconds=2)  # a run is taken once this old (its findings are stored by then)
CURSOR = "scan-runs"
MAX_RUNS = 1000  # runs read per pass (the rest at the next)
MAX_IDS = 1000  # ids and aliases an event carries (as `scan --controller` sends: 64 KiB data)


def advisory_build(store: Store) -> datetime | None:
    """When the store's advisory data was last (re)built; None before any import."""
    with store.connect() as conn:
        built = conn.execute(select(adv_meta.c.value).where(adv_meta.c.key == "built_at")).scalar()
    if not built:
        return None
    at = datetime.fromisoformat(str(built))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _micros(at: datetime) -> int:
    return int(_utc(at).timestamp() * 1_000_000)


def _from_micros(n: int) -> datetime:
    return datetime.fromtimestamp(n / 1_000_000, UTC)


@dataclass(kw_only=True)
class ScanRunWatch:
    """Match running images again after an advisory update, and hand every new scan run of a
    running image to the rules; call it every ``interval`` seconds. Returns the runs handed."""

    store: Store
    running: Callable[[], Mapping[str, str]]  # namespace/name -> image reference or digest
    sink: Callable[[Event], None]  # stores the scan.completed event and hands it to the rules
    interval: float = DEFAULT_INTERVAL
    name: str = "scan-runs"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _matched_build: datetime | None = field(default=None, init=False)

    def __call__(self) -> list[str]:
        workloads = self._running_by_digest()
        self._rematch(workloads)
        return self._new_runs(workloads)

    # ------------------------------------------------------------ the running images

    def _running_by_digest(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for workload, ref in sorted(self.running().items()):
            if "@" in ref:
                digest: str | None = ref.rsplit("@", 1)[1]
            elif ref.startswith("sha256:"):
                digest = ref
            else:
                digest = image_digest(self.store, ref)
            if digest:
                out.setdefault(digest, {})[workload] = ref
        return out

    # ------------------------------------------------------------ advisory updates

    def _rematch(self, workloads: Mapping[str, Mapping[str, str]]) -> None:
        built = advisory_build(self.store)
        if built is None or built == self._matched_build:
            return
        from stockade.scanning.pipeline import ScanOptions, real_backend, rematch_stored
        from stockade.scanning.results import DatabaseInfo

        for digest, named in workloads.items():
            stored = load_inventory(self.store, digest)
            if stored is None or stored.matched_db_built == built:
                continue
            # the run's target: a reference a workload names it by, with a tag when one does
            refs = sorted(named.values(), key=lambda r: ("@" in r or r.startswith("sha256:"), r))
            reference = digest if refs[0].startswith("sha256:") else refs[0]
            try:
                rematch_stored(
                    self.store,
                    digest,
                    reference,
                    ScanOptions(),
                    real_backend(),
                    DatabaseInfo(built=built, sources=("controller",)),
                )
            except StockadeError as exc:  # one image's trouble does not hold up the others
                log.warning("matching %s again after new advisories failed: %s", digest, exc)
                continue
            log.warning("new advisories: %s matched again (%d workloads)", reference, len(named))
        self._matched_build = built

    # ------------------------------------------------------------ new runs

    def _cursor(self) -> int:
        c = cursors.c
        with self.store.begin() as conn:
            found = conn.execute(select(c.tx).where(c.name == CURSOR)).scalar()
            if found is not None:
                return int(found)
            start = _micros(self.clock())  # a new store: the runs from now on
            conn.execute(insert(cursors).values(name=CURSOR, tx=start, seq=0, term=0))
            return start

    def _save(self, position: int) -> None:
        with self.store.begin() as conn:
            conn.execute(
                update(cursors)
                .where(cursors.c.name == CURSOR)
                .values(tx=position, updated_at=datetime.now(UTC))
            )

    def _new_runs(self, workloads: Mapping[str, Mapping[str, str]]) -> list[str]:
        since = self._cursor()
        until = self.clock() - SETTLE
        r = scan_runs.c
        with self.store.connect() as conn:
            rows = (
                conn.execute(
                    select(scan_runs)
                    .where(r.finished_at > _from_micros(since), r.finished_at <= until)
                    .order_by(r.finished_at, r.id)
                    .limit(MAX_RUNS)
                )
                .mappings()
                .all()
            )
        if not rows:
            return []
        newest: dict[str, Any] = {}  # digest -> its newest run of this pass
        for row in rows:
            if row["manifest_digest"] in workloads:
                newest[row["manifest_digest"]] = row
        handed = []
        for digest, row in newest.items():
            self.sink(self._event(row, workloads[digest]))
            handed.append(str(row["id"]))
        self._save(max(_micros(row["finished_at"]) for row in rows))
        return handed

    def _event(self, run: Mapping[str, Any], named: Mapping[str, str]) -> Event:
        counts = {s: int(run[s] or 0) for s in SEVERITIES}
        fixes = dict.fromkeys(SEVERITIES, 0)
        ids: set[str] = set()
        f = findings.c
        with self.store.connect() as conn:
            for severity, finding_id, details in conn.execute(
                select(f.severity, f.finding_id, f.details).where(f.run_id == run["id"])
            ):
                ids.add(str(finding_id))
                d = details if isinstance(details, dict) else {}
                ids.update(str(a) for a in d.get("aliases") or ())
                key = str(Severity.parse(str(severity)))
                if key in fixes and fixable(d):
                    fixes[key] += 1
        summary = ScanSummary(
            image=str(run["target"])[:512],
            digest=run["manifest_digest"],
            counts=counts,
            fixable=fixes,
            ids=sorted(ids)[:MAX_IDS],
            images=dict(named),
        )
        event = scan_event(summary, source="controller")
        why = "advisory update" if run["mode"] == "rematched" else f"{run['mode']} run"
        return replace(
            event,
            message=f"{why}: {event.message}",
            data={**event.data, "run": run["id"], "mode": run["mode"]},
        )
