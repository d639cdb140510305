"""The HTTPS webhook: a small ASGI application served by uvicorn.

Decisions run in worker threads (a never-seen image may be scanned within the policy's budget),
each with a deadline; events are written to the store in batches by one writer thread so the
request path never waits on the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from stockade.admission.engine import needs_vulns
from stockade.admission.interface import VulnSource
from stockade.admission.policy import Policy
from stockade.admission.review import MAX_BODY, ReviewError, answer, failure_response, parse
from stockade.admission.workload import workload_of
from stockade.store.writer import EventWriter

log = logging.getLogger("stockade.admission")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class AdmissionApp:
    def __init__(self, policy: Policy, source: VulnSource | None, events: EventWriter) -> None:
        self.policy = policy
        self.source = source
        self.events = events
        self.deadline = policy.spec.scanBudgetSeconds + 1.0
        self.uses_vulns = needs_vulns(policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        if path in ("/healthz", "/readyz") and method == "GET":
            await _reply(send, 200, {"status": "ok"})
            return
        if path not in ("/validate", "/") or method != "POST":
            await _reply(send, 404, {"error": "not found: POST /validate"})
            return
        body = await _read_body(scope, receive)
        if body is None:
            await _reply(send, 413, {"error": f"request body exceeds {MAX_BODY} bytes"})
            return
        try:
            review = parse(body)
        except ReviewError as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        started = time.perf_counter()
        try:
            if self._answers_at_once(review):
                # Cheap decisions (no I/O) run inline: a thread hop costs more than the decision.
                outcome = answer(review, self.policy, self.source)
            else:
                outcome = await asyncio.wait_for(
                    asyncio.to_thread(answer, review, self.policy, self.source),
                    timeout=self.deadline,
                )
        except TimeoutError:
            await _reply(send, 200, failure_response(review, self.policy, "decision timed out"))
            return
        except Exception as exc:
            log.exception("admission decision failed")
            await _reply(send, 200, failure_response(review, self.policy, type(exc).__name__))
            return
        if outcome.event is not None:
            self.events.put(outcome.event)
        took_ms = (time.perf_counter() - started) * 1000
        await _reply(send, 200, outcome.response, timing=took_ms)

    def _answers_at_once(self, review: Mapping[str, Any]) -> bool:
        if not self.uses_vulns or self.source is None:
            return True
        obj = review["request"].get("object")
        w = workload_of(obj) if isinstance(obj, dict) else None
        return w is None or all(self.source.is_ready(c.image) for c in w.containers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.events.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.events.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(
    send: Send, status: int, payload: dict[str, Any], timing: float | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if timing is not None:  # the decision's own time, for latency monitoring (Server-Timing)
        headers.append((b"server-timing", f"decide;dur={timing:.3f}".encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(app: AdmissionApp, *, host: str, port: int, certfile: str, keyfile: str) -> None:
    """Serve HTTPS until interrupted."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
