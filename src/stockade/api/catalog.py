"""Reading the uploaded results: images with their newest scan, vulnerabilities across images, the
running workloads affected, and CIS runs.

An image is its manifest digest (or its reference, when a scan had no digest: a root filesystem, an
SBOM). Only its newest scan counts; every reference it was scanned under is listed in ``names``.

The running workloads of an image are those the controller knows run it: the response service's
``known_images`` and the ``images`` (workload -> image reference or digest) that scan summaries
(``POST /api/v1/scans/summary``, ``scan.completed`` events) named, the newest naming winning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from stockade.api.results import fixable
from stockade.api.tables import results
from stockade.model import Severity
from stockade.model.redact import redact
from stockade.store import Store
from stockade.store.tables import events, findings

SUMMARIES_READ = 500  # newest scan.completed events whose ``images`` name running workloads


def _iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


@dataclass(slots=True)
class Image:
    key: str  # the digest, or the reference of a scan without one
    digest: str | None
    run: dict[str, Any]  # the newest api_results row
    names: set[str] = field(default_factory=set)

    def runs(self, workload_images: Mapping[str, str]) -> list[str]:
        """The running workloads whose image is this one (by a reference or the digest)."""
        return sorted(
            w
            for w, ref in workload_images.items()
            if ref in self.names or (self.digest is not None and self.digest in ref)
        )

    def to_dict(self, workload_images: Mapping[str, str]) -> dict[str, Any]:
        s = self.run["summary"]
        return {
            "digest": self.digest,
            "names": sorted(self.names),
            "last_scan": {
                "run": self.run["id"],
                "finished_at": _iso(self.run["finished_at"]),
                "received_at": _iso(self.run["received_at"]),
                "by": self.run["uploaded_by"],
            },
            "counts": s.get("counts", {}),
            "fixable": s.get("fixable", {}),
            "packages": s.get("packages", {}).get("total"),
            "complete": s.get("complete"),
            "workloads": self.runs(workload_images),
        }


def images(store: Store) -> list[Image]:
    """Every scanned image with its newest scan, newest first."""
    t = results
    # the history first, without the summaries; then only the newest scans' summaries
    q = (
        select(t.c.id, t.c.subject, t.c.digest)
        .where(t.c.kind == "scan")
        .order_by(t.c.received_at.desc(), t.c.id.desc())
    )
    by_key: dict[str, Image] = {}
    with store.connect() as conn:
        for run_id, subject, digest in conn.execute(q):
            key = digest or subject
            image = by_key.get(key)
            if image is None:
                image = by_key[key] = Image(key=key, digest=digest, run={"id": run_id})
            image.names.add(subject)
        newest = {i.run["id"]: i for i in by_key.values()}
        ids = list(newest)
        for start in range(0, len(ids), 500):
            chunk = select(t).where(t.c.id.in_(ids[start : start + 500]))
            for row in conn.execute(chunk).mappings():
                newest[row["id"]].run = dict(row)
    return list(by_key.values())


def image(store: Store, key: str) -> Image | None:
    for found in images(store):
        if found.key == key:
            return found
    return None


def workload_images(store: Store, known: Mapping[str, str]) -> dict[str, str]:
    """Running workload (``namespace/name``) -> its image reference or digest."""
    named = events.c.data["images"]  # only that part: a summary's ``ids`` may be long
    q = (
        select(named)
        .where(events.c.kind == "scan.completed")
        .order_by(events.c.at.desc(), events.c.id.desc())
        .limit(SUMMARIES_READ)
    )
    with store.connect() as conn:
        given = [r[0] for r in conn.execute(q)]
    out: dict[str, str] = {}
    for images_of in reversed(given):  # oldest first: the newest naming wins
        if isinstance(images_of, dict):
            out.update({str(w): str(ref) for w, ref in images_of.items()})
    return {**out, **known}


def vulnerability(row: Mapping[str, Any]) -> dict[str, Any]:
    d = row["details"] or {}
    return {
        "id": row["finding_id"],
        "severity": row["severity"],
        "title": row["title"],
        "package": d.get("package"),
        "type": d.get("package_type"),
        "installed": d.get("installed_version"),
        "fixed": d.get("fixed_version"),
        "fix_state": d.get("fix_state"),
        "fixable": fixable(d),
        "aliases": list(d.get("aliases") or ()),
    }


def run_findings(store: Store, runs: Iterable[str]) -> list[dict[str, Any]]:
    wanted = list(runs)
    if not wanted:
        return []
    q = select(findings).where(findings.c.run_id.in_(wanted)).order_by(findings.c.pk)
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def selected(
    vulns: Iterable[dict[str, Any]], severity: Severity | None, fixable_only: bool | None
) -> list[dict[str, Any]]:
    """Those at ``severity`` or worse, and fixable (True), not fixable (False) or either."""
    return [
        v
        for v in vulns
        if (severity is None or Severity.parse(v["severity"]) >= severity)
        and (fixable_only is None or v["fixable"] is fixable_only)
    ]


def _worst_first(v: dict[str, Any]) -> tuple[int, str, str]:
    return (-int(Severity.parse(v["severity"])), v["id"], v.get("package") or "")


def image_detail(store: Store, found: Image, workload_images: Mapping[str, str]) -> dict[str, Any]:
    s = found.run["summary"]
    rows = run_findings(store, [found.run["id"]])
    return {
        **found.to_dict(workload_images),
        "packages": {**s.get("packages", {}), "unchecked": s.get("unchecked", [])},
        "vulnerabilities": sorted((vulnerability(r) for r in rows), key=_worst_first),
    }


def vulnerabilities(store: Store, workload_images: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every vulnerability of the images' newest scans: the images carrying it (which package,
    which version) and the running workloads affected, worst and widest first."""
    found = images(store)
    by_run = {i.run["id"]: i for i in found}
    out: dict[str, dict[str, Any]] = {}
    for row in run_findings(store, by_run):
        image_of = by_run[row["run_id"]]
        v = vulnerability(row)
        entry = out.setdefault(
            v["id"],
            {
                "id": v["id"],
                "severity": v["severity"],
                "title": v["title"],
                "aliases": set(),
                "fixable": False,
                "images": [],
                "workloads": set(),
            },
        )
        if Severity.parse(v["severity"]) > Severity.parse(entry["severity"]):
            entry["severity"] = v["severity"]
        entry["aliases"].update(v["aliases"])
        entry["fixable"] = entry["fixable"] or v["fixable"]
        entry["images"].append(
            {
                "digest": image_of.digest,
                "names": sorted(image_of.names),
                "package": v["package"],
                "installed": v["installed"],
                "fixed": v["fixed"],
            }
        )
        entry["workloads"].update(image_of.runs(workload_images))
    listed = [
        {**e, "aliases": sorted(e["aliases"]), "workloads": sorted(e["workloads"])}
        for e in out.values()
    ]
    listed.sort(key=lambda e: (-int(Severity.parse(e["severity"])), -len(e["workloads"]), e["id"]))
    return listed


def cis_run(row: Any) -> dict[str, Any]:
    s = row["summary"]
    return {
        "id": row["id"],
        "node": row["subject"],
        "benchmark": s.get("benchmark"),
        "roles": s.get("roles", []),
        "counts": s.get("counts", {}),
        "worst": s.get("worst"),
        "checks": row["findings"],
        "finished_at": _iso(row["finished_at"]),
        "received_at": _iso(row["received_at"]),
        "by": row["uploaded_by"],
    }


def cis_runs(store: Store, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """CIS runs newest first; and whether more follow."""
    q = (
        select(results)
        .where(results.c.kind == "cis")
        .order_by(results.c.received_at.desc(), results.c.id.desc())
        .offset(offset)
        .limit(limit + 1)
    )
    with store.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [cis_run(r) for r in rows[:limit]], len(rows) > limit


def cis_detail(store: Store, run_id: str) -> dict[str, Any] | None:
    q = select(results).where(results.c.id == run_id, results.c.kind == "cis")
    with store.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        return None
    checks = []
    for f in run_findings(store, [run_id]):
        d = f["details"] or {}
        checks.append(
            {
                "id": f["finding_id"],
                "number": d.get("benchmark_id"),
                "section": d.get("section"),
                "title": f["title"],
                "status": f["status"],
                "severity": f["severity"],
                "scored": d.get("scored"),
                "evidence": d.get("evidence"),
                "expected": d.get("expected"),
                "remediation": d.get("remediation"),
                "reason": d.get("reason"),
                "compliance": f["compliance"] or [],
            }
        )
    checks.sort(key=lambda c: (_number_key(c["number"]), c["id"]))
    return {**cis_run(row), "results": checks}


def _number_key(number: Any) -> tuple[int, ...]:
    """``1.2.10`` after ``1.2.9``; a result without a number last."""
    parts = str(number or "").split(".")
    return tuple(int(p) if p.isdigit() else 10**6 for p in parts) if number else (10**6,)


def masked(value: Any) -> Any:
    """Answers pass the gate again (they were masked when stored; this keeps it so)."""
    return redact(value)
