"""The connection graph and the workloads: ``GET /api/v1/graph``, ``GET /api/v1/workloads`` and
``GET /api/v1/workloads/{namespace}/{name}`` (reader).

The graph is read from the aggregate the controller maintains as agents' connection records and
events arrive (:mod:`stockade.network.graph`); see :mod:`stockade.api.topology` for the levels,
ids and badges. Every string in it was masked by the gate when it was stored; the answers pass
it again (nodes, events) where that stays cheap at 20,000 edges.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from stockade.api.access import Reader, StoreDep
from stockade.api.graphmodel import GraphModels, kept
from stockade.api.topology import Context, GraphQuery, PolicyCache, build_graph, workload_doc
from stockade.api.topology import workload_edges as edges_of
from stockade.model.duration import parse_since
from stockade.model.redact import redact, redact_text
from stockade.network.graph import graph_version, hour_of, node_id, node_rows
from stockade.store import Store
from stockade.store.records import EventFilter, events_page
from stockade.store.tables import events
from stockade.store.versions import config_version

router = APIRouter()
log = logging.getLogger("stockade.api")
RECENT_EVENTS = 50


def _policies(request: Request) -> PolicyCache:
    cache = getattr(request.app.state, "policies", None)
    if cache is None:
        cache = request.app.state.policies = PolicyCache()
    assert isinstance(cache, PolicyCache)
    return cache


class AnswerCache:
    """Graph answers already serialised, each with the state of the store it was built from (the
    aggregate's version, the configuration's version, the newest scan summary, the hour).

    An answer whose state is still the store's is served as it is. After a change, the previous
    answer is served while one background build makes the new one (at most one per query), as
    long as the previous answer is younger than ``MAX_STALE`` seconds; older than that, the request
    builds the answer itself. Answers say their age (``X-Stockade-Graph-Age``, milliseconds since
    their build began). Bounded: the least recently used answers go first."""

    SIZE = 32
    MAX_STALE = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: OrderedDict[Any, tuple[Any, bytes, float]] = OrderedDict()
        self._building: set[Any] = set()

    def serve(
        self, key: Any, state: Any, build: Callable[[], bytes], *, allow_stale: bool
    ) -> tuple[bytes, float]:
        """The answer for ``key`` and its age in seconds (a previous one only if ``allow_stale``)."""
        now = time.monotonic()
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
                if found[0] == state:
                    return found[1], now - found[2]
                if allow_stale and now - found[2] < self.MAX_STALE:
                    if key not in self._building:
                        self._building.add(key)
                        threading.Thread(
                            target=self._build, args=(key, state, build), daemon=True
                        ).start()
                    return found[1], now - found[2]
        return self._build(key, state, build), 0.0

    def _build(self, key: Any, state: Any, build: Callable[[], bytes]) -> bytes:
        began = time.monotonic()
        try:
            body = build()
        except Exception:  # a background build that failed: the next request builds again
            log.exception("building the graph answer failed")
            raise
        finally:
            with self._lock:
                self._building.discard(key)
        with self._lock:
            self._answers[key] = (state, body, began)
            self._answers.move_to_end(key)
            while len(self._answers) > self.SIZE:
                self._answers.popitem(last=False)
        return body


def _answers(request: Request) -> AnswerCache:
    cache = getattr(request.app.state, "graph_answers", None)
    if cache is None:
        cache = request.app.state.graph_answers = AnswerCache()
    assert isinstance(cache, AnswerCache)
    return cache


def _models(request: Request) -> GraphModels:
    models = request.app.state.graph_models  # made and closed by create_app
    assert isinstance(models, GraphModels)
    return models


def full_answer(
    store: Store, policies: PolicyCache, q: GraphQuery, ctx: Context | None = None
) -> bytes:
    """The answer to ``q`` built from the store (what the models' answers equal); ``ctx``: the
    nodes' badges read already, for several answers at one state of the store."""
    doc = build_graph(store, ctx or Context(store, policies), q)
    doc["nodes"] = redact(doc["nodes"])
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _state(store: Store) -> tuple[int, int, str | None, int]:
    """What a graph answer depends on besides its query: the aggregate, the policy and quarantine
    (one configuration sequence), the newest scan summary (critical counts) and the hour."""
    newest_scan = (
        select(events.c.id)
        .where(events.c.kind == "scan.completed")
        .order_by(events.c.at.desc(), events.c.id.desc())
        .limit(1)
    )
    with store.connect() as conn:
        version = graph_version(conn)
        scan = conn.execute(newest_scan).scalar()
    return version, config_version(store), scan, hour_of(datetime.now(UTC))


def _json(doc: Any) -> Response:
    # json.dumps directly: FastAPI's encoder walks 20,000 edges several times over
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return Response(body, media_type="application/json")


def _since(text: str | None) -> datetime | None:
    return parse_since(text) if text else None


@router.get("/api/v1/graph")
async def graph(
    request: Request,
    store: StoreDep,
    _: Reader,
    level: Annotated[str, Query(pattern="^(workload|group|namespace)$")] = "workload",
    since: Annotated[
        str | None, Query(max_length=64, description="24h or ISO; default: all time")
    ] = None,
    namespace: Annotated[str | None, Query(max_length=253)] = None,
    encryption: Annotated[str | None, Query(pattern="^(clear|tls)$")] = None,
    violations: Annotated[bool, Query(description="only edges with violations or blocks")] = False,
    split: Annotated[
        str | None,
        Query(pattern="^encryption$", description="encryption: one edge per encryption"),
    ] = None,
    allow_stale: Annotated[
        bool,
        Query(description="the previous answer (at most 10 s old) while a new one is built"),
    ] = False,
) -> Response:
    """Nodes and edges of the connection graph at one level (workload, group or namespace),
    over every connection, or those from ``since`` on (rounded down to the hour)."""
    q = GraphQuery(
        level=level,
        since=_since(since),
        namespace=namespace,
        encryption=encryption,
        violations=violations,
        split=split == "encryption",
    )
    policies = _policies(request)
    answers = _answers(request)
    key = (level, since, namespace, encryption, violations, split)

    models = _models(request)

    def answer() -> tuple[bytes, float]:
        state = _state(store)

        def build() -> bytes:
            if kept(q):  # patched in memory from what changed since its last answer
                return models.answer(store, policies, q, badges=state[1:3])
            return full_answer(store, policies, q)

        return answers.serve(key, state, build, allow_stale=allow_stale)

    body, age = await run_in_threadpool(answer)
    return Response(
        body,
        media_type="application/json",
        headers={"X-Stockade-Graph-Age": str(int(age * 1000))},
    )


def _workloads(store: Store, policies: PolicyCache, namespace: str | None) -> list[dict[str, Any]]:
    ctx = Context(store, policies)
    with store.connect() as conn:
        nodes = node_rows(conn)
    out = [
        workload_doc(n, ctx.badges(n))
        for n in nodes.values()
        if n.kind == "workload" and (namespace is None or n.namespace == namespace)
    ]
    return sorted(out, key=lambda d: (d["namespace"] or "", d["name"]))


@router.get("/api/v1/workloads")
async def workloads(
    request: Request,
    store: StoreDep,
    _: Reader,
    namespace: Annotated[str | None, Query(max_length=253)] = None,
) -> Response:
    """Every workload the graph has seen: groups, mode, quarantine, critical vulnerabilities."""
    found = await run_in_threadpool(_workloads, store, _policies(request), namespace)
    return _json(redact(found))


def _workload(
    store: Store, policies: PolicyCache, namespace: str, name: str, since: datetime | None
) -> dict[str, Any] | None:
    namespace, name = redact_text(namespace), redact_text(name)  # stored masked
    ident = node_id("workload", namespace, name)
    with store.connect() as conn:
        node = node_rows(conn, [ident]).get(ident)
    if node is None:
        return None
    doc = workload_doc(node, Context(store, policies).badges(node))
    page, _ = events_page(store, EventFilter(namespace=namespace), limit=500)
    mine = [e for e in page if any(r is not None and r.name == name for r in (e.resource, e.peer))]
    doc["events"] = [e.to_dict() for e in mine[:RECENT_EVENTS]]
    doc["edges"] = edges_of(store, ident, since)
    return doc


@router.get("/api/v1/workloads/{namespace}/{name}")
async def workload(
    request: Request,
    store: StoreDep,
    _: Reader,
    namespace: str,
    name: str,
    since: Annotated[
        str | None, Query(max_length=64, description="24h or ISO; default: all time")
    ] = None,
) -> Response:
    """One workload: its groups, mode, quarantine, recent events and its edges (since ``since``)."""
    found = await run_in_threadpool(
        _workload, store, _policies(request), namespace[:253], name[:253], _since(since)
    )
    if found is None:
        raise HTTPException(404, "no such workload in the connection graph")
    return _json(redact(found))
