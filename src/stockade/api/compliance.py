"""CIS runs and compliance framework reports through the controller's API.

``POST /api/v1/cis/runs`` (agent or operator) takes one benchmark run's check results (what
``stockade bench k8s|docker --controller`` uploads). The framework reports are computed by the
compliance pillar's own code from the controller's store: the newest results of each family
(uploaded scans and CIS runs included) and the events of a window.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from stockade.api import catalog
from stockade.api.access import Reader, ScanReporter, StoreDep
from stockade.api.inventory import Limit, Offset, read_json
from stockade.api.results import parse_cis, store_cis
from stockade.model.duration import parse_since

router = APIRouter()


@router.post("/api/v1/cis/runs", status_code=201)
async def upload_cis_run(request: Request, who: ScanReporter, store: StoreDep) -> dict[str, Any]:
    """One benchmark run's check results: stored once per run id."""
    data = await run_in_threadpool(read_json, await request.body(), "CIS run")
    upload = parse_cis(data)
    stored = await run_in_threadpool(store_cis, store, upload, who=who.who)
    return {"run": upload.run, "stored": stored, "findings": len(upload.findings)}


@router.get("/api/v1/cis/runs")
def list_cis_runs(
    _: Reader, store: StoreDep, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """CIS runs newest first: node, benchmark, counts by status, the worst failing severity."""
    items, more = catalog.cis_runs(store, offset=offset, limit=limit)
    return {"items": catalog.masked(items), "next": offset + limit if more else None}


@router.get("/api/v1/cis/runs/{run_id}")
def show_cis_run(
    run_id: str,
    _: Reader,
    store: StoreDep,
    status: Annotated[str | None, Query(pattern=r"^[A-Z_]{1,16}$")] = None,
) -> dict[str, Any]:
    """One run's results by check (benchmark number order); ``status`` keeps one status."""
    found = catalog.cis_detail(store, run_id[:64])
    if found is None:
        raise HTTPException(404, "no such CIS run")
    if status:
        found["results"] = [r for r in found["results"] if r["status"] == status]
    out: dict[str, Any] = catalog.masked(found)
    return out


@router.get("/api/v1/compliance/{framework}", response_model=None)
def compliance_report(
    framework: str,
    _: Reader,
    store: StoreDep,
    since: Annotated[str, Query(max_length=64, description="24h or ISO")] = "24h",
    format: Annotated[str, Query(pattern=r"^(json|html)$")] = "json",
) -> dict[str, Any] | HTMLResponse:
    """A framework report (pci-dss, hipaa, gdpr, nist-800-190) from the controller's store, as
    JSON (``stockade report compliance -f json``) or the self-contained HTML export."""
    # the frameworks (their requirement data, evaluation and rendering) load with the first report
    from stockade.compliance.frameworks import FRAMEWORKS, evaluate, load
    from stockade.compliance.frameworks.evidence import Window, rows_from_events
    from stockade.compliance.frameworks.render import report_dict, report_html
    from stockade.compliance.frameworks.stored import current_findings, window_events

    if framework not in FRAMEWORKS:
        raise HTTPException(404, f"no framework {framework[:40]!r}: one of {', '.join(FRAMEWORKS)}")
    window = Window(since=parse_since(since), until=datetime.now(UTC))
    evidence = rows_from_events(window_events(store, window.since), window)
    report = evaluate(load(framework), current_findings(store), evidence=evidence, window=window)
    if format == "html":
        return HTMLResponse(report_html(report), headers={"Cache-Control": "no-store"})
    out: dict[str, Any] = catalog.masked(report_dict(report))
    return out
