"""The controller's HTTP API (FastAPI): events, agents' ingestion, users, tokens, sessions, metrics,
response rules, notification targets, quarantine and scan summaries; the other concerns in routers of
their own (captures, graph and workloads, policies, inventory, compliance, replicas, the console).

Every event the controller stores (ingested or made by the API) is handed to the response rules
(:mod:`stockade.api.responses`) as it is stored; the request does not wait for them.

Every error is one line in ``{"detail": ...}``: 400 for a bad request (never 422), 401 without
valid credentials, 403 for a role that may not, 408/413 for a body too slow or too large.
"""

# No "from __future__ import annotations": FastAPI resolves the dependency aliases defined inside
# create_app from the annotations at run time.

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from stockade import __version__
from stockade.api import agent_config as agent_configuration
from stockade.api import agents as agent_registry
from stockade.api import (
    auth,
    captures,
    catalog,
    compliance,
    console,
    graph,
    inventory,
    metrics,
    policies,
    replicas,
    response_store,
    runtime_profiles,
    virtual_patches,
)
from stockade.api import quarantine as quarantines
from stockade.api.access import (
    SESSION_COOKIE,
    Admin,
    Agent,
    Anyone,
    Operator,
    Reader,
    ScanReporter,
    document,
)
from stockade.api.auth import Principal
from stockade.api.graphmodel import GraphModels
from stockade.api.leader import SingletonJob, SingletonWorker, leadership_for
from stockade.api.limits import BodyLimits
from stockade.api.quarantine import RecordedQuarantine
from stockade.api.responses import ResponseService, scan_event, scan_summary
from stockade.api.stream import Broadcaster
from stockade.api.throttle import LoginThrottle, client_key
from stockade.config import parse_json
from stockade.events.ingest import MAX_BODY_BYTES
from stockade.model import Event, InputError, Severity, StockadeError, StoreError
from stockade.model.duration import parse_since
from stockade.model.redact import redact, redact_text
from stockade.store import Store
from stockade.store.records import EventFilter, events_page, record_events

MAX_STREAMS = 100
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    session_hours: float = 8.0
    secure_cookies: bool = True  # False only when serving plain HTTP (behind a TLS proxy)
    body_timeout: float = 10.0
    replica: str | None = None  # this replica's id (default: host name and process id)
    login_failures_per_address: int = 50  # before the address is slowed down (429)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Strict):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=auth.MAX_PASSWORD)


class TokenBody(_Strict):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=16)


class UserBody(_Strict):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=16)
    password: str | None = Field(default=None, max_length=auth.MAX_PASSWORD)


def _one_line(text: str) -> str:
    return redact_text(" ".join(text.split()))[:500]


def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        text = f"{where}: {first.get('msg', 'invalid request')}"
    else:
        text = str(exc)
    status = 503 if isinstance(exc, StoreError) else 400
    detail = "the store is unavailable" if status == 503 else _one_line(text)
    return JSONResponse({"detail": detail}, status_code=status)


def parse_json_body(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the body is not UTF-8") from None
    return parse_json(text, name="body", error=InputError, max_bytes=MAX_BODY_BYTES)


def encode_cursor(position: tuple[datetime, str]) -> str:
    raw = json.dumps([position[0].isoformat(), position[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        position = (datetime.fromisoformat(at), str(ident))
    except (ValueError, TypeError, binascii.Error):
        raise HTTPException(400, "cursor: not a cursor this API returned") from None
    if position[0].tzinfo is None:
        raise HTTPException(400, "cursor: not a cursor this API returned")
    return position


def create_app(
    store: Store,
    settings: Settings | None = None,
    responses: ResponseService | None = None,
    jobs: Sequence[SingletonJob] = (),
) -> FastAPI:
    """The API over ``store``; ``responses`` carries the response rules, notification targets and
    quarantine (by default: no rules, no targets, quarantine recorded for the enforcers).

    ``jobs`` are singleton work (retention, registry watch, schedules): each runs on the one
    replica holding the store's leader lock (:mod:`stockade.api.leader`), every ``interval``
    seconds and when its ``wake`` is set. On PostgreSQL the response rules are such a job too:
    the leader follows the events every replica stores (:mod:`stockade.api.follower`)."""
    settings = settings or Settings()
    broadcaster = Broadcaster(store)
    service = responses or ResponseService(store, quarantine=RecordedQuarantine(store))
    leadership = leadership_for(store, settings.replica)
    singleton_jobs = list(jobs)
    if store.dialect == "postgresql":
        singleton_jobs.insert(0, service.follow(leadership).job)
    worker = SingletonWorker(leadership, singleton_jobs)
    graph_models = GraphModels()  # the connection graph in memory (stockade.api.graphmodel)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def wake_stream() -> None:  # called on the response worker's thread
            with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
                loop.call_soon_threadsafe(broadcaster.wake)

        service.on_stored = wake_stream
        service.start()
        worker.start()
        try:
            yield
        finally:
            await broadcaster.stop()
            await run_in_threadpool(worker.close)
            await run_in_threadpool(service.close)
            await run_in_threadpool(graph_models.close)

    def publish(event: Event) -> None:
        """An event the API stored: to the response rules (never waits: audit is small)."""
        service.submit([event])

    app = FastAPI(
        title="Stockade controller",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.service = service
    app.state.broadcaster = broadcaster
    app.state.publish = publish
    app.state.settings = settings
    app.state.singletons = worker
    app.state.graph_models = graph_models
    app.include_router(replicas.router)
    throttle = LoginThrottle(free_per_address=settings.login_failures_per_address)
    app.state.login_throttle = throttle
    app.add_middleware(BodyLimits, body_timeout=settings.body_timeout)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(StockadeError, _bad_request)

    app.include_router(policies.router)
    app.include_router(console.router)
    app.include_router(inventory.router)
    app.include_router(compliance.router)
    app.include_router(captures.router)
    app.include_router(graph.router)
    app.include_router(virtual_patches.router)
    app.include_router(runtime_profiles.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # ------------------------------------------------------------ sessions

    @app.post("/api/v1/login")
    def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        """Password login: sets the session cookie (HttpOnly, SameSite=Strict, Secure). Repeated
        failures for a name or from an address are answered 429 with Retry-After."""
        address = client_key(request.client.host if request.client else None)
        verdict = throttle.attempt(body.name, address)
        if not verdict.allowed:
            raise HTTPException(
                429,
                f"too many failed logins; retry after {verdict.retry_after} seconds",
                headers={"Retry-After": str(verdict.retry_after)},
            )
        found = auth.login(store, body.name, body.password, hours=settings.session_hours)
        if found is None:
            throttle.failed(body.name, address)
            attempted = Principal(name=body.name, role="reader", via="password")
            auth.audit(
                store,
                attempted,
                "login_failed",
                severity=Severity.MEDIUM,
                message=f"failed login for {body.name!r} from {address}",
                after={"address": address},
                sink=publish,
            )
            if verdict.blocked:  # this failure starts a block: said once, not per refused try
                auth.audit(
                    store,
                    attempted,
                    "login_throttled",
                    severity=Severity.HIGH,
                    message=f"logins for {body.name!r} or from {address} are slowed down after "
                    "repeated failures",
                    after={"address": address},
                    sink=publish,
                )
            raise HTTPException(401, "wrong name or password")
        throttle.succeeded(body.name, address)
        secret, who = found
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            secure=settings.secure_cookies,
            samesite="strict",
            path="/",
        )
        auth.audit(store, who, "login", sink=publish)
        return {
            "name": who.name,
            "role": who.role,
            "expires_in": int(settings.session_hours * 3600),
        }

    @app.post("/api/v1/logout")
    def logout(request: Request, response: Response, who: Reader) -> dict[str, str]:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            auth.logout(store, cookie)
        response.delete_cookie(SESSION_COOKIE, path="/")
        auth.audit(store, who, "logout", sink=publish)
        return {"status": "logged out"}

    @app.get("/api/v1/whoami")
    def whoami(who: Anyone) -> dict[str, str]:
        return {"name": who.name, "role": who.role, "via": who.via}

    # ------------------------------------------------------------ tokens and users

    @app.get("/api/v1/tokens")
    def tokens(_: Admin) -> list[dict[str, Any]]:
        return auth.list_tokens(store)

    @app.post("/api/v1/tokens", status_code=201)
    def create_token(body: TokenBody, who: Admin) -> dict[str, Any]:
        """A new API token; the secret is in this answer only."""
        info, secret = auth.create_token(
            store, name=body.name, role=body.role, actor=who, sink=publish
        )
        return {**info, "token": secret}

    @app.delete("/api/v1/tokens/{token_id}")
    def revoke_token(token_id: str, who: Admin) -> dict[str, Any]:
        after = auth.revoke_token(store, token_id[:64], actor=who, sink=publish)
        if after is None:
            raise HTTPException(404, "no such token")
        return after

    @app.get("/api/v1/users")
    def users(_: Admin) -> list[dict[str, Any]]:
        return auth.list_users(store)

    @app.post("/api/v1/users", status_code=201)
    def add_user(body: UserBody, who: Admin) -> dict[str, Any]:
        """A new user; without a password one is generated and returned in this answer only."""
        password = body.password or auth.generate_password()
        info = auth.add_user(
            store, name=body.name, role=body.role, password=password, actor=who, sink=publish
        )
        return {**info, **({} if body.password else {"password": password})}

    # ------------------------------------------------------------ events

    def event_filter(
        category: Annotated[str | None, Query(max_length=80)] = None,
        kind: Annotated[str | None, Query(max_length=80, pattern=r"^[a-z0-9_.*-]+$")] = None,
        level: Annotated[str | None, Query(max_length=16, description="at least")] = None,
        namespace: Annotated[str | None, Query(max_length=253)] = None,
        since: Annotated[str | None, Query(max_length=64, description="24h or ISO")] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
    ) -> EventFilter:
        return EventFilter(
            category=category,
            kind=kind,
            min_level=Severity.parse(level) if level else None,
            namespace=namespace,
            since=parse_since(since) if since else None,
            until=parse_since(until) if until else None,
        )

    Filter = Annotated[EventFilter, Depends(event_filter)]

    @app.get("/api/v1/events")
    def list_events(
        f: Filter,
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> dict[str, Any]:
        """Events newest first; pass ``next`` back as ``cursor`` for the following page."""
        before = decode_cursor(cursor) if cursor else None
        page, position = events_page(store, f, limit=limit, before=before)
        return {
            "events": [e.to_dict() for e in page],
            "next": encode_cursor(position) if position else None,
        }

    @app.get("/api/v1/events/stream", response_class=StreamingResponse)
    async def stream_events(f: Filter, _: Reader) -> StreamingResponse:
        """Server-sent events: every event stored from now on that matches the filters."""
        if len(broadcaster.subscribers) >= MAX_STREAMS:
            raise HTTPException(503, f"more than {MAX_STREAMS} live streams are open")
        sub = broadcaster.subscribe(f)

        async def lines() -> AsyncIterator[str]:
            try:
                yield ": stream open\n\n"
                while True:
                    try:
                        event: Event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        if sub.missed:
                            yield 'event: overflow\ndata: {"detail": "client too slow"}\n\n'
                            return
                        yield ": keep-alive\n\n"
                        continue
                    data = json.dumps(event.to_dict(), separators=(",", ":"))
                    yield f"id: {event.id}\nevent: event\ndata: {data}\n\n"
                    if sub.missed and sub.queue.empty():
                        yield 'event: overflow\ndata: {"detail": "client too slow"}\n\n'
                        return
            finally:
                broadcaster.unsubscribe(sub)

        return StreamingResponse(
            lines(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------ agents

    @app.post("/api/v1/agents/events")
    async def ingest(request: Request, who: Agent) -> dict[str, Any]:
        """An agent's batch (also its heartbeat): events and connection records, idempotent on
        their ids."""
        body = await request.body()
        taken = await run_in_threadpool(agent_registry.take_batch, store, body, token_name=who.name)
        if taken.stored.accepted:
            broadcaster.wake()
            fresh = taken.fresh()
            # the rules run on the response worker; this only waits when it is 10,000 behind
            await run_in_threadpool(service.submit, fresh)
            await run_in_threadpool(quarantines.mark_applied, store, fresh)
        return taken.answer

    @app.get("/api/v1/agents/config")
    def agent_config(
        _: Agent, since: Annotated[int | None, Query(ge=0, le=2**62)] = None
    ) -> dict[str, Any]:
        """What the agents follow, by version: the recorded quarantines and the policies."""
        return agent_configuration.agent_config(store, since)

    @app.get("/api/v1/agents")
    def list_agents(_: Reader) -> list[dict[str, Any]]:
        return agent_registry.list_agents(store)

    # ------------------------------------------------------------ responding

    @app.get("/api/v1/response-rules", response_model=None)
    def response_rules(request: Request, _: Reader) -> Any:
        """The rules in force on every replica (names, modes, actions, each rule's settings) and
        their version, masked; for ``Accept: application/yaml`` the stored document itself (404
        before one is stored)."""
        accept = request.headers.get("accept", "")
        if "yaml" in accept and "json" not in accept:
            stored = response_store.load(store, response_store.RULES)
            if stored is None:
                raise HTTPException(404, "no response rules stored yet")
            return PlainTextResponse(redact_text(stored.text), media_type="application/yaml")
        out: dict[str, Any] = redact(service.rules_summary())
        return out

    @app.put("/api/v1/response-rules")
    async def put_response_rules(request: Request, who: Operator) -> dict[str, Any]:
        """Replace the response rules of every replica with a ResponseRules YAML (or JSON)
        document, validated whole (400 with its line when it is not valid, the rules in force
        stay)."""
        text = await document(request)
        before, after = await run_in_threadpool(lambda: service.replace_rules(text, by=who.who))
        await run_in_threadpool(
            auth.audit,
            store,
            who,
            "response_rules_replaced",
            before=before,
            after=after,
            message=f"{who.who} applied response rules version {after['version']}",
            sink=publish,
        )
        masked: dict[str, Any] = redact(after)
        return masked

    @app.post("/api/v1/response-rules/diff")
    async def diff_response_rules(request: Request, _: Reader) -> dict[str, Any]:
        """What applying the document would change: a unified diff of the canonical YAML."""
        text = await document(request)
        out: dict[str, Any] = redact(await run_in_threadpool(service.diff_rules, text))
        return out

    @app.get("/api/v1/notification-targets")
    def notification_targets(_: Reader) -> list[dict[str, Any]]:
        """The targets in force: names, kinds and filters (never their settings)."""
        out: list[dict[str, Any]] = redact(service.targets_summary())
        return out

    @app.put("/api/v1/notification-targets")
    async def put_notification_targets(request: Request, who: Operator) -> list[dict[str, Any]]:
        """Replace the notification targets of every replica with a targets YAML (or JSON)
        document."""
        text = await document(request)
        before, after = await run_in_threadpool(lambda: service.replace_targets(text, by=who.who))
        await run_in_threadpool(
            auth.audit,
            store,
            who,
            "notification_targets_replaced",
            before=before,
            after=after,
            sink=publish,
        )
        masked: list[dict[str, Any]] = redact(after)
        return masked

    @app.post("/api/v1/notification-targets/{name}/test")
    async def test_notification_target(name: str, who: Operator) -> dict[str, Any]:
        """Send a test event to one target, whatever its filter says (audited)."""
        result = await run_in_threadpool(service.send_test, name[:64])
        if result is None:
            raise HTTPException(404, f"no notification target named {_one_line(name[:64])!r}")
        await run_in_threadpool(
            auth.audit, store, who, "notification_test_sent", after=result, sink=publish
        )
        masked: dict[str, Any] = redact(result)
        return masked

    @app.get("/api/v1/quarantine")
    def list_quarantine(_: Reader) -> dict[str, Any]:
        """Quarantined workloads; ``applied`` once nft cuts their addresses."""
        return {"mode": service.quarantine.mode, "workloads": quarantines.listing(store)}

    @app.post("/api/v1/quarantine/{namespace}/{name}", status_code=201)
    async def quarantine_workload(
        namespace: str, name: str, request: Request, who: Operator
    ) -> dict[str, Any]:
        """Quarantine a workload by hand (its traffic is cut, it keeps running); the body may
        give ``{"reason": "..."}``."""
        workload = f"{namespace[:253]}/{name[:253]}"
        body = await request.body()
        data = await run_in_threadpool(parse_json_body, body) if body.strip() else {}
        reason = data.get("reason") if isinstance(data, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise HTTPException(400, "reason must be a string")
        reason = redact_text(_one_line(reason or f"quarantined by {who.who}"))[:500]
        if quarantines.is_quarantined(store, workload) is not None:
            raise HTTPException(409, f"{_one_line(workload)} is quarantined already")
        await run_in_threadpool(service.quarantine.isolate, workload, reason)
        await run_in_threadpool(
            auth.audit,
            store,
            who,
            "quarantine_set",
            after={"workload": workload, "reason": reason},
            message=f"{who.who} quarantined {workload}",
            sink=publish,
        )
        broadcaster.wake()
        return {"workload": workload, "quarantined": True, "reason": reason}

    @app.delete("/api/v1/quarantine/{namespace}/{name}")
    def lift_quarantine(namespace: str, name: str, who: Operator) -> dict[str, Any]:
        """Lift a workload's quarantine (its traffic flows again)."""
        workload = f"{namespace[:253]}/{name[:253]}"
        before = quarantines.is_quarantined(store, workload)
        if before is None:
            raise HTTPException(404, f"{_one_line(workload)} is not quarantined")
        service.quarantine.lift(workload)
        summary = {"workload": workload, "reason": before["reason"]}
        auth.audit(
            store,
            who,
            "quarantine_lifted",
            before=summary,
            after=None,
            message=f"{who.who} lifted the quarantine of {workload}",
            sink=publish,
        )
        return {"workload": workload, "lifted": True}

    @app.post("/api/v1/scans/summary", status_code=202)
    async def post_scan_summary(request: Request, who: ScanReporter) -> dict[str, Any]:
        """An image's vulnerability summary: stored as a ``scan.completed`` event, and rules with
        vulnerability criteria are evaluated against the workloads running it."""
        body = await request.body()
        data = await run_in_threadpool(parse_json_body, body)
        summary = scan_summary(data)
        event = scan_event(summary, source=f"api:{who.name}")
        await run_in_threadpool(record_events, store, [event])
        broadcaster.wake()
        await run_in_threadpool(service.submit, [event])
        running = summary.running(service.responder.known_images)
        # the workloads named may be new runners of a vulnerable image
        await run_in_threadpool(
            virtual_patches.auto_apply, store, service.responder.known_images, publish
        )
        return {"event": event.id, "workloads": sorted(running)}

    # ------------------------------------------------------------ metrics

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus(_: Reader) -> PlainTextResponse:
        leader = {"stockade_controller_leader": 1.0 if leadership.is_leader else 0.0}
        return PlainTextResponse(
            metrics.exposition(
                store,
                gauges=leader,
                workload_images=catalog.workload_images(store, service.responder.known_images),
            ),
            media_type=metrics.CONTENT_TYPE,
        )

    return app
