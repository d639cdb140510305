"""The ``scan.completed`` event that sums up one scan report: what ``stockade scan --controller``
reports, and what the controller stores when it matches a running image again after an advisory
update (:mod:`stockade.api.rematch`). Its data is also a scan summary (``image``, ``digest``,
``counts``, ``fixable``, ``ids``) the controller's response rules evaluate against the image's
running workloads; the findings themselves travel separately."""

from __future__ import annotations

from stockade.model import Event, ResourceRef, Severity
from stockade.scanning.results import ScanReport, vuln

MAX_SUMMARY_IDS = 1000  # an event's data is at most 64 KiB; the full list is in the upload


def worst(counts: dict[str, int]) -> Severity:
    present = [Severity.parse(name) for name, n in counts.items() if n]
    return max(present, default=Severity.UNKNOWN)


def scan_completed_event(report: ScanReport) -> Event:
    """A ``scan.completed`` event summing up ``report``."""
    inv = report.inventory
    counts = report.gate.counts()
    digest = inv.image.manifest_digest if inv.image else None
    fixable = dict.fromkeys(counts, 0)
    ids: set[str] = set()
    for g in report.gate.active:
        details = vuln(g)
        ids.add(g.finding.id)  # spelled as the advisories do, as rules name them
        if details is not None:
            ids.update(details.aliases)
            fixable[str(g.finding.severity)] += bool(details.fixed_version)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no vulnerabilities"
    return Event(
        kind="scan.completed",
        severity=worst(counts),
        source="scan",
        message=f"scan of {inv.source}: {len(inv.packages)} packages, {summary}",
        resource=ResourceRef(kind="image", name=inv.source[:1024], digest=digest),
        action="fail" if report.gate.failed else None,
        data={
            "image": inv.source[:512],
            **({"digest": digest} if digest else {}),
            "counts": counts,
            "fixable": fixable,
            "ids": sorted(ids)[:MAX_SUMMARY_IDS],
            "suppressed": len(report.gate.suppressed),
            "packages": len(inv.packages),
            "failed": report.gate.failed,
            "incomplete": report.incomplete,
            "not_checked": report.coverage_lines()[:20],
        },
    )
