"""Request body bounds for the controller: size per path and time to arrive.

A request that announces a larger body than its path allows gets 413 before any byte is read; a
chunked body is counted as it arrives and the read fails with 413 at the limit, so no request costs
more than its limit in memory. A body that does not finish within ``body_timeout`` seconds gets
408. Header size, header time and the number of connections are bounded by the webhook's uvicorn
protocol (``stockade.admission.limits``), which the controller serves with too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException

from stockade.events.ingest import MAX_BODY_BYTES
from stockade.events.rules import MAX_CAPTURE_BYTES

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INGEST_PATH = "/api/v1/agents/events"
SCANS_PATH = "/api/v1/scans/summary"
# full results uploaded by `scan` and `bench` (stockade.api.results)
RESULTS_PATHS = frozenset({"/api/v1/scans", "/api/v1/cis/runs"})
DOCUMENT_PATHS = frozenset(
    {
        "/api/v1/response-rules",
        "/api/v1/response-rules/diff",
        "/api/v1/notification-targets",
        "/api/v1/firewall/policy",
        "/api/v1/firewall/policy/diff",
        "/api/v1/admission/policy",
        "/api/v1/admission/policy/diff",
        "/api/v1/runtime-profiles",
        "/api/v1/runtime-profiles/diff",
        "/api/v1/runtime-profiles/learned",
    }
)
SMALL_BODY = 64 * 1024  # logins, tokens, users: a few fields
DOCUMENT_BODY = 1024 * 1024  # a rules, targets or policy file


CAPTURE_UPLOAD = re.compile(r"/api/v1/agents/captures/[0-9a-f]{32}\Z")  # PUT of a pcap
CAPTURE_BODY = MAX_CAPTURE_BYTES + 1024 * 1024  # the largest capture allowed, and some slack


def body_limit(path: str) -> int:
    if CAPTURE_UPLOAD.match(path):
        return CAPTURE_BODY
    if path in (INGEST_PATH, SCANS_PATH) or path in RESULTS_PATHS:
        return MAX_BODY_BYTES
    return DOCUMENT_BODY if path in DOCUMENT_PATHS else SMALL_BODY


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g} seconds")


class BodyLimits:
    def __init__(self, app: ASGIApp, *, body_timeout: float = 10.0) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, f"request body larger than {limit} bytes")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        received = 0
        complete = False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:  # only the disconnect is left to wait for (live streams)
                return await receive()
            remaining = deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                raise BodyTooSlow(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
