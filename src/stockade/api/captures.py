"""Packet captures through the controller: operators ask for one, agents on the node capture and
upload it masked, operators download it (``docs/forensics.md``, "Through the controller").

| request | role |
| --- | --- |
| ``POST /api/v1/captures`` | operator: a capture request (201) |
| ``GET /api/v1/captures`` | reader: the requests, newest first, with state, size, masked count |
| ``GET /api/v1/captures/{id}`` | reader: one request |
| ``GET /api/v1/captures/{id}/pcap`` | operator: the masked pcap (audited) |
| ``GET /api/v1/agents/captures?since=V`` | agent: the pending requests by version |
| ``POST /api/v1/agents/captures/{id}/state`` | agent: claim it (``running``) or say it ``failed`` |
| ``PUT /api/v1/agents/captures/{id}`` | agent: the pcap it captured (masked again here) |
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from stockade.api import auth
from stockade.api import capture_requests as requests
from stockade.api.access import Agent, Operator, Publish, Reader, StoreDep
from stockade.events.rules import (
    MAX_CAPTURE_BYTES,
    MAX_CAPTURE_SECONDS,
    MAX_FILTER,
    MIN_CAPTURE_BYTES,
    check_capture_filter,
)
from stockade.model import InputError

router = APIRouter()

PCAP_TYPE = "application/vnd.tcpdump.pcap"
_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CaptureBody(_Strict):
    namespace: str = Field(pattern=_NAME, max_length=253)
    name: str = Field(pattern=_NAME, max_length=253)
    duration: float = Field(default=30.0, gt=0, le=MAX_CAPTURE_SECONDS)  # seconds
    max_bytes: int = Field(default=10_000_000, ge=MIN_CAPTURE_BYTES, le=MAX_CAPTURE_BYTES)
    filter: str | None = Field(default=None, min_length=1, max_length=MAX_FILTER)


class StateBody(_Strict):
    state: Literal["running", "failed"]
    error: str = Field(default="", max_length=1000)


def _known(store: Any, capture_id: str) -> dict[str, Any]:
    if not _valid_id(capture_id):
        raise HTTPException(404, "no such capture")
    row = requests.find(store, capture_id)
    if row is None:
        raise HTTPException(404, "no such capture")
    return row


def _valid_id(capture_id: str) -> bool:
    return len(capture_id) == 32 and all(c in "0123456789abcdef" for c in capture_id)


@router.post("/api/v1/captures", status_code=201)
def create_capture(body: CaptureBody, who: Operator, store: StoreDep, publish: Publish) -> Any:
    """Ask for a packet capture of one workload (bounded in time and size, with an optional
    tcpdump filter, compiled here first); an agent on its node captures it masked."""
    if body.filter is not None:
        try:
            check_capture_filter(body.filter)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    row = requests.request_capture(
        store,
        workload=f"{body.namespace}/{body.name}",
        duration=body.duration,
        max_bytes=body.max_bytes,
        bpf_filter=body.filter,
        requested_by=who.who,
        reason=f"requested by {who.who}",
    )
    auth.audit(
        store,
        who,
        "capture_requested",
        after=row,
        sink=publish,
        message=f"{who.who} requested a capture of {row['workload']}",
    )
    return row


@router.get("/api/v1/captures")
def list_captures(
    _: Reader,
    store: StoreDep,
    state: Annotated[str | None, Query(pattern="^(requested|running|done|failed)$")] = None,
) -> list[dict[str, Any]]:
    """Capture requests, newest first: state, size, packets, masked count."""
    return requests.listing(store, state)


@router.get("/api/v1/captures/{capture_id}")
def get_capture(capture_id: str, _: Reader, store: StoreDep) -> dict[str, Any]:
    return _known(store, capture_id)


@router.get("/api/v1/captures/{capture_id}/pcap", response_class=Response)
def download_capture(capture_id: str, who: Operator, store: StoreDep, publish: Publish) -> Response:
    """The masked pcap (``application/vnd.tcpdump.pcap``); 409 until it is ``done``."""
    row = _known(store, capture_id)
    data = requests.pcap_of(store, capture_id) if row["state"] == "done" else None
    if data is None:
        raise HTTPException(409, f"capture {capture_id} is {row['state']}, not done")
    auth.audit(
        store,
        who,
        "capture_downloaded",
        after={"id": capture_id, "size": len(data)},
        message=f"{who.who} downloaded capture {capture_id} of {row['workload']}",
        sink=publish,
    )
    return Response(
        data,
        media_type=PCAP_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="capture-{capture_id}.pcap"',
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------- agents


@router.get("/api/v1/agents/captures")
def agent_captures(
    _: Agent, store: StoreDep, since: Annotated[int | None, Query(ge=0, le=2**62)] = None
) -> dict[str, Any]:
    """The pending capture requests with their version (``unchanged`` when ``since`` is it)."""
    return requests.pending(store, since)


@router.post("/api/v1/agents/captures/{capture_id}/state")
def agent_capture_state(
    capture_id: str, body: StateBody, who: Agent, store: StoreDep, request: Request
) -> dict[str, Any]:
    """``running``: this agent takes the request (409 when another one did); ``failed``: the
    agent that took it could not capture (``error`` says why)."""
    _known(store, capture_id)
    if body.state == "running":
        if not requests.claim(store, capture_id, who.name):
            raise HTTPException(409, "the capture is not waiting for an agent")
    else:
        event = requests.fail(store, capture_id, who.name, body.error or "no reason given")
        if event is None:
            raise HTTPException(409, "this agent does not run the capture")
        _stored(request, event)
    return _known(store, capture_id)


@router.put("/api/v1/agents/captures/{capture_id}")
async def upload_capture(
    capture_id: str,
    who: Agent,
    store: StoreDep,
    request: Request,
    masked: Annotated[int, Query(ge=0, le=2**40)] = 0,
    packets: Annotated[int, Query(ge=0, le=2**40)] = 0,
    stopped: Annotated[str, Query(max_length=40, pattern=r"^[a-z -]*$")] = "",
) -> dict[str, Any]:
    """The pcap the agent captured (masked there); masked again here in memory, then kept."""
    await run_in_threadpool(_known, store, capture_id)
    body = await request.body()
    report = {
        "masked_by_agent": masked,
        "masked": masked,
        "agent_packets": packets,
        "stopped": stopped,
    }
    try:
        done = await run_in_threadpool(requests.complete, store, capture_id, who.name, body, report)
    except InputError as exc:  # not a capture: the request failed, the agent is told why
        event = await run_in_threadpool(
            requests.fail, store, capture_id, who.name, f"the upload is not a capture: {exc}"
        )
        if event is not None:
            _stored(request, event)
        raise
    if done is None:
        raise HTTPException(409, "this agent does not run the capture")
    row, event = done
    _stored(request, event)
    return row


def _stored(request: Request, event: Any) -> None:
    """A capture event the controller stored: to the live streams and the response rules."""
    request.app.state.broadcaster.wake()
    request.app.state.publish(event)
