"""Images, scans and vulnerabilities through the controller's API.

``POST /api/v1/scans`` (agent or operator) takes one image's full scan (what ``stockade scan
--controller`` uploads); the reads (reader) show images with their newest scan, one image's
packages and vulnerabilities, and every vulnerability with the images and running workloads it
affects.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from stockade.api import catalog, virtual_patches
from stockade.api.access import Publish, Reader, ScanReporter, StoreDep
from stockade.api.results import parse_scan, store_scan
from stockade.config import parse_json
from stockade.events.ingest import MAX_BODY_BYTES
from stockade.model import InputError, Severity

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
SeverityQuery = Annotated[str | None, Query(max_length=16, description="at least")]
FixableQuery = Annotated[bool | None, Query(description="with a fix (true) or without (false)")]


def read_json(body: bytes, name: str) -> Any:
    """A JSON body, bounded (size and nesting); InputError (400, one line) otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the body is not UTF-8") from None
    return parse_json(text, name=name, error=InputError, max_bytes=MAX_BODY_BYTES)


def page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    """One page of ``items`` and the offset of the next (None on the last page)."""
    chosen = items[offset : offset + limit]
    more = offset + limit < len(items)
    return {
        "items": catalog.masked(chosen),
        "total": len(items),
        "next": offset + limit if more else None,
    }


def _known(request: Request, store: Any) -> dict[str, str]:
    known = request.app.state.service.responder.known_images
    return catalog.workload_images(store, known)


@router.post("/api/v1/scans", status_code=201)
async def upload_scan(
    request: Request, who: ScanReporter, store: StoreDep, publish: Publish
) -> dict[str, Any]:
    """One image's scan: stored once per run id (``stored`` false when sent before). Groups with
    ``virtualPatch: auto`` get the virtual patches its vulnerabilities call for."""
    data = await run_in_threadpool(read_json, await request.body(), "scan")
    upload = parse_scan(data)
    stored = await run_in_threadpool(store_scan, store, upload, who=who.who)
    if stored:
        known = request.app.state.service.responder.known_images
        await run_in_threadpool(virtual_patches.auto_apply, store, known, publish)
    return {"run": upload.run, "stored": stored, "findings": len(upload.findings)}


@router.get("/api/v1/images")
def list_images(
    request: Request, _: Reader, store: StoreDep, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Scanned images, newest scan first: counts by severity, fixable counts, running workloads."""
    running = _known(request, store)
    found = [i.to_dict(running) for i in catalog.images(store)]
    return page(found, offset, limit)


@router.get("/api/v1/images/{key:path}")
def show_image(
    key: str,
    request: Request,
    _: Reader,
    store: StoreDep,
    severity: SeverityQuery = None,
    fixable: FixableQuery = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """One image (its digest, or the reference of a scan without one): packages summary and
    the vulnerabilities of its newest scan, worst first."""
    at_least = Severity.parse(severity) if severity else None
    found = catalog.image(store, key[:1024])
    if found is None:
        raise HTTPException(404, "no scanned image with this digest")
    detail = catalog.image_detail(store, found, _known(request, store))
    vulns = catalog.selected(detail.pop("vulnerabilities"), at_least, fixable)
    return {**catalog.masked(detail), "vulnerabilities": page(vulns, offset, limit)}


@router.get("/api/v1/vulnerabilities")
def list_vulnerabilities(
    request: Request,
    _: Reader,
    store: StoreDep,
    severity: SeverityQuery = None,
    fixable: FixableQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Every vulnerability of the images' newest scans with the images and running workloads it
    affects: worst first, then those affecting most workloads."""
    at_least = Severity.parse(severity) if severity else None
    found = catalog.vulnerabilities(store, _known(request, store))
    return page(catalog.selected(found, at_least, fixable), offset, limit)
