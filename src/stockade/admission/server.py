"""The HTTPS webhook: a small ASGI application served by uvicorn.

Decisions run in a bounded pool of worker threads (a never-seen image may be scanned within the
policy's budget); each review has one deadline that all of its lookups share. Events are written
to the store in batches by one writer thread so the request path never waits on the database.

Health: ``GET /healthz`` is liveness (200 while the process serves, with the saturation state in
the body); ``GET /readyz`` is 503 while the webhook is saturated (the on-demand scan queue is full,
or every decision thread is busy), 200 otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from stockade.admission.decisions import DecisionCache
from stockade.admission.engine import needs_signatures, needs_vulns
from stockade.admission.interface import LookupBudget, VulnSource
from stockade.admission.limits import Limits, run_uvicorn
from stockade.admission.policy import Policy
from stockade.admission.review import (
    Outcome,
    ReviewError,
    answer,
    failure_response,
    object_of,
    parse,
    recall,
)
from stockade.admission.workload import workload_of
from stockade.model.jsonvalue import orjson
from stockade.store.writer import EventWriter

log = logging.getLogger("stockade.admission")

SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the interpreter lock when another waits

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# TLS 1.2 suites: forward secret AEAD only (no CBC, no RSA key exchange); TLS 1.3 is unaffected.


@dataclass(frozen=True, slots=True)
class _InForce:
    """The policy in force and what the server derives from it, swapped as one."""

    policy: Policy
    deadline: float  # seconds a decision may take: the policy's scan budget and a second
    uses_vulns: bool
    uses_signatures: bool  # registry I/O: never inline
    decisions: DecisionCache  # this policy's recent decisions made from memory

    @classmethod
    def of(cls, policy: Policy) -> _InForce:
        return cls(
            policy,
            policy.spec.scanBudgetSeconds + 1.0,
            needs_vulns(policy),
            needs_signatures(policy),
            DecisionCache(),
        )


class AdmissionApp:
    def __init__(
        self,
        policy: Policy,
        source: VulnSource | None,
        events: EventWriter,
        *,
        limits: Limits | None = None,
        decision_threads: int = 16,
    ) -> None:
        self._in_force = _InForce.of(policy)
        self.source = source
        self.events = events
        self.limits = limits or Limits()
        self.decision_threads = decision_threads
        self._pool = ThreadPoolExecutor(decision_threads, thread_name_prefix="admission-decide")
        self._busy = 0  # decisions handed to the pool and not finished
        self._busy_lock = threading.Lock()
        self.settle_heap = False  # at start-up: collect, then freeze what is left (see serve)

    @property
    def policy(self) -> Policy:
        return self._in_force.policy

    def replace_policy(self, policy: Policy) -> None:
        """Put ``policy`` in force for the reviews that arrive from now on (the controller's,
        followed by version); a review being decided keeps the policy it started with."""
        self._in_force = _InForce.of(policy)  # one assignment: never half of each

    def saturation(self) -> list[str]:
        """Why new reviews may not be decided in time right now (empty: not saturated)."""
        reasons = []
        if self._busy >= self.decision_threads:
            reasons.append(f"all {self.decision_threads} decision threads are busy")
        scans = self.source.saturation() if self.source is not None else None
        if scans:
            reasons.append(scans)
        return reasons

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        if path in ("/healthz", "/readyz") and method == "GET":
            reasons = self.saturation()
            state = {"status": "saturated" if reasons else "ok", "saturation": reasons}
            await _reply(send, 503 if reasons and path == "/readyz" else 200, state)
            return
        if path not in ("/validate", "/") or method != "POST":
            await _reply(send, 404, {"error": "not found: POST /validate"})
            return
        max_body = self.limits.max_body_bytes
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                body = await _read_body(scope, receive, max_body)
        except TimeoutError:
            error = {"error": f"request body not received in {self.limits.body_timeout} s"}
            await _reply(send, 408, error, close=True)
            return
        if body is None:
            error = {"error": f"request body exceeds {max_body} bytes"}
            await _reply(send, 413, error, close=True)
            return
        try:
            review = parse(body, max_body=max_body)
        except ReviewError as exc:
            await _reply(send, 400, {"error": str(exc)})
            return
        now = self._in_force  # this review's policy, whatever replaces it meanwhile
        policy = now.policy
        budget = LookupBudget(policy.spec.scanBudgetSeconds)  # from arrival: queueing counts
        started = time.perf_counter()
        try:
            key = now.decisions.key(body, review["request"]["uid"])
            outcome = await self._decide(review, now, budget, key)
        except TimeoutError:
            await _reply(send, 200, failure_response(review, policy, "decision timed out"))
            return
        except Exception as exc:
            log.exception("admission decision failed")
            await _reply(send, 200, failure_response(review, policy, type(exc).__name__))
            return
        if outcome.event is not None:
            self.events.put(outcome.event)
        took_ms = (time.perf_counter() - started) * 1000
        await _reply(send, 200, outcome.response, timing=took_ms)

    async def _decide(
        self, review: Mapping[str, Any], now: _InForce, budget: LookupBudget, key: bytes | None
    ) -> Outcome:
        # The same content decided moments ago from memory; else cheap decisions (no I/O) run
        # inline, a thread hop costing more than the decision, and are kept for next time.
        outcome = recall(review, now.decisions, key)
        if outcome is not None:
            return outcome
        if self._answers_at_once(review, now):
            return answer(review, now.policy, self.source, budget, decisions=now.decisions, key=key)
        return await asyncio.wait_for(self._in_pool(review, now.policy, budget), now.deadline)

    async def _in_pool(
        self, review: Mapping[str, Any], policy: Policy, budget: LookupBudget
    ) -> Any:
        def run() -> Any:
            try:
                return answer(review, policy, self.source, budget)
            finally:
                with self._busy_lock:
                    self._busy -= 1

        with self._busy_lock:
            self._busy += 1
        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def _answers_at_once(self, review: Mapping[str, Any], now: _InForce) -> bool:
        if now.uses_signatures and self.source is not None:
            return False
        if not now.uses_vulns or self.source is None:
            return True
        obj = object_of(review["request"])
        w = workload_of(obj) if isinstance(obj, dict) else None
        return w is None or all(self.source.is_ready(c.image) for c in w.containers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.events.start()
                if self.settle_heap:
                    _settle_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=False, cancel_futures=True)
                await asyncio.to_thread(self.events.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _settle_heap() -> None:
    """Collect start-up's garbage, then freeze what is left (modules, policy, caches, TLS
    context): the collector's full passes never walk it again. Without this, the first full
    collection came 0.5-0.9 s into serving and took 60 ms of CPU (100k start-up objects), every
    request of the worker waiting behind it; later ones grow with the heap."""
    gc.collect()
    gc.freeze()


async def _read_body(scope: Scope, receive: Receive, max_body: int) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > max_body:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _json_body(payload: dict[str, Any]) -> bytes:
    """``payload`` as compact JSON: orjson's when installed (a tenth of json's cost, a tenth of
    a review's serving CPU saved; UTF-8 instead of ``\\u`` escapes, the same values), json's for
    what orjson refuses (a lone surrogate from a hostile uid, an integer beyond 64 bits)."""
    if orjson is not None:
        try:
            return orjson.dumps(payload)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(payload, separators=(",", ":")).encode()


async def _reply(
    send: Send,
    status: int,
    payload: dict[str, Any],
    timing: float | None = None,
    *,
    close: bool = False,
) -> None:
    body = _json_body(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the request was not read to its end: the connection cannot carry another
        headers.append((b"connection", b"close"))
    if timing is not None:  # the decision's own time, for latency monitoring (Server-Timing)
        headers.append((b"server-timing", f"decide;dur={timing:.3f}".encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(
    app: AdmissionApp,
    *,
    host: str,
    port: int,
    certfile: str,
    keyfile: str,
    sock: socket.socket | None = None,
) -> None:
    """Serve HTTPS until interrupted, within ``app.limits`` (on ``sock`` when given: one worker
    of several sharing the port, see :mod:`stockade.admission.workers`).

    The interpreter hands its lock between threads every 0.5 ms instead of 5 ms: the event loop
    that answers reviews waits at most that long for the event writer's batch. Once uvicorn is set
    up, the heap start-up left is frozen out of garbage collection (:func:`_settle_heap`)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    app.settle_heap = True
    run_uvicorn(
        app,
        host=host,
        port=port,
        limits=app.limits,
        certfile=certfile,
        keyfile=keyfile,
        sock=sock,
    )
