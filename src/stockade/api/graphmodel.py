"""The connection graph held in memory by each controller replica and patched as it changes, so
the answer after agents report new connections costs what they changed, not 20,000 edges.

A :class:`GraphModel` holds one window of the aggregate (its all-time totals, or its hours from
one hour on) as the rows the store has, every node, and per level (workload, group, namespace;
with or without ``split=encryption``) each edge of that level already serialised. Every merge
stamps the rows it writes with the aggregate's new version (:mod:`stockade.network.graph`), so a
refresh reads the version and then only the rows stamped above what the model holds, whichever
replica wrote them; a row read twice is simply set again. An edge of a level is rebuilt from
its member rows when one of them changed or a node moved to another group; the nodes of the
group and namespace levels (a few hundred) are counted again per answer, the workload level's
are kept masked and serialised.

The answer is byte for byte what :func:`stockade.api.topology.build_graph` makes from the store
(tests/api/test_graph_model.py holds them equal). Not kept: the ``encryption`` filter, and
``namespace`` above the workload level, which build from the store as before.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import weakref
from bisect import bisect_left
from collections import Counter, OrderedDict
from datetime import datetime
from typing import Any, cast

from stockade.api.topology import Context, GraphQuery, PolicyCache, _Agg, _Level, level_id
from stockade.api.topology import workload_doc as node_doc
from stockade.model.redact import redact
from stockade.network.graph import ALL_TIME, EdgeRow, NodeRow, graph_version, hour_of, hour_rows
from stockade.network.graph import node_rows as read_nodes
from stockade.store import Store

log = logging.getLogger("stockade.api")
RowKey = tuple[str, str, str]  # source node, target node, encryption
LevelKey = tuple[str, str, str]  # source, target at the level; encryption when split, else ""


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def kept(q: GraphQuery) -> bool:
    """Whether a model answers ``q`` (otherwise it is built from the store)."""
    return q.encryption is None and (q.namespace is None or q.level == "workload")


class _Sums:
    """One level edge's totals over its member rows, kept as rows come, go and change: counts
    and sets by multiplicity (a port listed by two rows stays when one goes); first and last seen
    only move outwards (a row's own do, by how the aggregate merges)."""

    __slots__ = ("counts", "dlp", "first", "last", "ports", "protocols")

    def __init__(self) -> None:
        self.counts = [0, 0, 0, 0, 0, 0]  # connections, clear, tls, violations, blocked, bytes
        self.ports: Counter[str] = Counter()
        self.protocols: Counter[str] = Counter()
        self.dlp: Counter[str] = Counter()
        self.first = ""
        self.last = ""

    def add(self, r: EdgeRow, sign: int = 1) -> None:
        c = self.counts
        n = sign * r.connections
        c[0] += n
        if r.encryption == "clear":
            c[1] += n
        elif r.encryption == "tls":
            c[2] += n
        c[3] += sign * r.violations
        c[4] += sign * r.blocked
        c[5] += sign * r.bytes
        for counter, items in ((self.ports, r.ports), (self.protocols, r.protocols)):
            for item in items:
                counter[item] += sign
                if not counter[item]:
                    del counter[item]
        for sensor, k in r.dlp.items():
            self.dlp[sensor] += sign * k
            if not self.dlp[sensor]:
                del self.dlp[sensor]
        if sign > 0:
            self.first = min(self.first, r.first_seen) if self.first else r.first_seen
            self.last = max(self.last, r.last_seen)

    def flagged(self) -> bool:
        return bool(self.counts[3] or self.counts[4])

    def doc(self, lk: LevelKey) -> dict[str, Any]:
        c = self.counts
        agg = _Agg(
            connections=c[0],
            clear=c[1],
            tls=c[2],
            violations=c[3],
            blocked=c[4],
            bytes=c[5],
            ports=set(self.ports),
            protocols=set(self.protocols),
            dlp=dict(self.dlp),
            first=self.first,
            last=self.last,
        )
        return agg.doc(lk[0], lk[1], split=lk[2])


def _edge_id(lk: LevelKey) -> str:
    return f"{lk[0]}>{lk[1]}" + (f"#{lk[2]}" if lk[2] else "")


class _View:
    """One level (and split) of a model: which level edge each row is in, and every level edge
    serialised (its id, its JSON, whether it has violations or blocks)."""

    def __init__(self, model: GraphModel, level: str, split: bool) -> None:
        # not a reference cycle: a model dropped is freed at once (see _settled)
        self.model: GraphModel = cast("GraphModel", weakref.proxy(model))
        self.level = level
        self.split = split
        self.place: dict[str, str] = {}  # node id -> its id at the level
        self.members: dict[LevelKey, set[RowKey]] = {}
        self.where: dict[RowKey, LevelKey] = {}
        self.degree: dict[str, int] = {}  # node id -> rows shown it is an end of
        self.sums: dict[LevelKey, _Sums] = {}
        self.edges: dict[LevelKey, tuple[str, bool]] = {}  # its JSON, whether flagged
        self.ids: list[str] = []  # the edges' ids, sorted
        self.order: list[LevelKey] = []  # the edges in the order of their ids
        self.texts: list[str] = []  # and their JSON
        self.patch({key: [] for key in model.rows}, set(model.nodes))

    def _of(self, node: NodeRow) -> str:
        found = self.place.get(node.id)
        if found is None:
            found = self.place[node.id] = level_id(self.level, node, self.model.ctx.badges(node))
        return found

    def patch(self, rows: dict[RowKey, list[tuple[int, EdgeRow | None]]], nodes: set[str]) -> None:
        """Take in the changed ``rows`` (each with its changed hours and their state before)
        and ``nodes``; the model holds their new state."""
        m = self.model
        moved: set[RowKey] = set()
        for ident in nodes:
            was = self.place.pop(ident, None)
            node = m.nodes.get(ident)
            if was is None or node is None or self._of(node) != was:
                moved |= m.adjacent.get(ident, set())  # its edges move (or appear)
        dirty: set[LevelKey] = set()
        redo: set[LevelKey] = set()  # lost a member: summed again from the rest
        for key in rows.keys() | moved:
            old = self.where.get(key)
            src, dst = m.nodes.get(key[0]), m.nodes.get(key[1])
            lk = None
            if src is not None and dst is not None and key in m.rows:
                lk = (self._of(src), self._of(dst), key[2] if self.split else "")
            if old is not None and old == lk:
                sums = self.sums[lk]
                hours = m.rows[key]
                for hour, before in rows.get(key, ()):
                    if before is not None:
                        sums.add(before, -1)
                    sums.add(hours[hour])
                dirty.add(lk)
                continue
            if old is not None:
                del self.where[key]
                self.members[old].discard(key)
                redo.add(old)
                for end in key[:2]:
                    self.degree[end] -= 1
            if lk is not None:  # an edge is shown once both its nodes are known
                self.where[key] = lk
                self.members.setdefault(lk, set()).add(key)
                sums = self.sums.setdefault(lk, _Sums())
                for row in m.rows[key].values():
                    sums.add(row)
                dirty.add(lk)
                for end in key[:2]:
                    self.degree[end] = self.degree.get(end, 0) + 1
        for lk in redo:
            sums = self.sums[lk] = _Sums()
            for key in self.members[lk]:
                for row in m.rows[key].values():
                    sums.add(row)
        for lk in dirty | redo:
            self._emit(lk)

    def _emit(self, lk: LevelKey) -> None:
        ident = _edge_id(lk)
        if not self.members.get(lk):
            self.members.pop(lk, None)
            self.sums.pop(lk, None)
            if self.edges.pop(lk, None) is not None:
                i = bisect_left(self.ids, ident)
                del self.ids[i], self.order[i], self.texts[i]
            return
        sums = self.sums[lk]
        text = _dumps(sums.doc(lk))
        i = bisect_left(self.ids, ident)
        if lk in self.edges:
            self.texts[i] = text
        else:
            self.ids.insert(i, ident)
            self.order.insert(i, lk)
            self.texts.insert(i, text)
        self.edges[lk] = (text, sums.flagged())

    def answer(self, q: GraphQuery) -> bytes:
        m = self.model
        if q.namespace is not None:  # the workload level only (see kept())
            return self._in_namespace(q, q.namespace)
        if q.violations:
            edges = ",".join(e[0] for e in map(self.edges.__getitem__, self.order) if e[1])
        else:
            edges = ",".join(self.texts)
        ends = {i for i, n in self.degree.items() if n > 0}
        placed = ends if q.violations else ends | m.quiet(q.since)
        if q.violations:
            shown: set[str] = set()
            for lk, e in self.edges.items():
                if e[1]:
                    shown.update(lk[:2])
        elif self.level == "workload":
            shown = placed
        else:
            shown = {self._of(m.nodes[i]) for i in placed}
        return self._doc(q, placed, shown, edges)

    def _in_namespace(self, q: GraphQuery, namespace: str) -> bytes:
        """The workload level's edges with either end in ``namespace``, and their nodes."""
        m = self.model
        texts: list[str] = []
        placed: set[str] = set()
        shown: set[str] = set()
        for i, lk in enumerate(self.order):
            if namespace not in (m.nodes[lk[0]].namespace, m.nodes[lk[1]].namespace):
                continue
            placed.update(lk[:2])
            if not q.violations or self.edges[lk][1]:
                texts.append(self.texts[i])
                shown.update(lk[:2])
        if not q.violations:
            placed |= {i for i in m.quiet(q.since) if m.nodes[i].namespace == namespace}
            shown = placed
        return self._doc(q, placed, shown, ",".join(texts))

    def _doc(self, q: GraphQuery, placed: set[str], shown: set[str], edges: str) -> bytes:
        m = self.model
        if self.level == "workload":
            nodes = ",".join(m.fragment(i) for i in sorted(placed & shown))
        else:
            level = _Level(self.level, m.ctx)
            for ident in sorted(placed):
                level.of(m.nodes[ident])
            nodes = _dumps(redact(level.finished(shown)))[1:-1]
        since = q.since.isoformat() if q.since else None
        return (
            f'{{"level":{_dumps(self.level)},"since":{_dumps(since)},"nodes":[{nodes}],'
            f'"edges":[{edges}]}}'
        ).encode()


def _settled() -> None:
    """The objects of a model just made live long: moved out of the garbage collector's sight.
    A full collection would otherwise walk every row held (a third of a second per million
    objects, at random requests); rows replaced later are freed by their reference counts, as
    nothing in a model is in a reference cycle."""
    gc.freeze()


class GraphModel:
    """One window of the aggregate in memory (see the module's docstring), for one state of the
    configuration and scans (badges): another state gets another model."""

    def __init__(self, store: Store, ctx: Context, start: int) -> None:
        self.store = store
        self.start = start  # ALL_TIME, or the first hour of the window
        self.ctx = ctx  # what the nodes' badges come from
        self.version = -1
        self.rows: dict[RowKey, dict[int, EdgeRow]] = {}
        self.nodes: dict[str, NodeRow] = {}
        self.adjacent: dict[str, set[RowKey]] = {}
        self._fragments: dict[str, str] = {}  # the workload level's node docs, masked JSON
        # the same without their times (which change with every sighting): as is, and masked
        self._heads: dict[str, tuple[str, str]] = {}
        self._views: dict[tuple[str, bool], _View] = {}
        # per view, what changed since it was last patched: rows (each hour's state the view
        # holds) and nodes
        self._due: dict[tuple[str, bool], tuple[dict[RowKey, dict[int, Any]], set[str]]] = {}
        self._asked: dict[tuple[str, bool], float] = {}  # when each view last answered
        self.lock = threading.Lock()

    def narrowed(self, start: int) -> GraphModel:
        """A model of the hours from ``start`` on (at least this one's start) made from what
        this one holds: the window of ``since=24h`` moves on every hour."""
        with self.lock:
            out = GraphModel(self.store, self.ctx, start)  # the same configuration state
            out.version = self.version
            out.nodes = dict(self.nodes)
            out._heads = dict(self._heads)
            for key, hours in self.rows.items():
                kept_hours = {h: r for h, r in hours.items() if h >= start}
                if kept_hours:
                    out.rows[key] = kept_hours
                    for end in key[:2]:
                        out.adjacent.setdefault(end, set()).add(key)
            return out

    def refresh(self) -> None:
        """Read what merges wrote since the version held (the version first: a row newer than it
        is read again next time, which sets the same state)."""
        with self.store.connect() as conn:
            version = graph_version(conn)
            if version == self.version:
                return
            changed = hour_rows(conn, start=self.start, after=self.version)
            nodes = read_nodes(conn, after=self.version)
        rows: dict[RowKey, list[tuple[int, EdgeRow | None]]] = {}
        for hour, row in changed:
            key = (row.src, row.dst, row.encryption)
            hours = self.rows.setdefault(key, {})
            rows.setdefault(key, []).append((hour, hours.get(hour)))
            hours[hour] = row
            for end in key[:2]:
                self.adjacent.setdefault(end, set()).add(key)
        for ident, node in nodes.items():
            self.nodes[ident] = node
            self.ctx.forget(ident)
            self._fragments.pop(ident, None)
        for rows_due, nodes_due in self._due.values():  # for each view, when it is asked
            for key, states in rows.items():
                due = rows_due.setdefault(key, {})
                for hour, before in states:
                    due.setdefault(hour, before)  # what the view holds is the oldest state
            nodes_due.update(nodes)
        self.version = version

    def quiet(self, since: datetime | None) -> set[str]:
        """The workloads seen from ``since`` on (on the map with or without edges)."""
        return {
            i
            for i, n in self.nodes.items()
            if n.kind == "workload" and (since is None or n.last_seen >= since)
        }

    def fragment(self, ident: str) -> str:
        """Node ``ident``'s doc at the workload level, masked, as JSON. Its times change with
        every sighting and are masked each time; the rest is masked again only when it changed."""
        done = self._fragments.get(ident)
        if done is not None:
            return done
        node = self.nodes[ident]
        doc = node_doc(node, self.ctx.badges(node))
        times = {k: doc.pop(k) for k in ("first_seen", "last_seen") if k in doc}
        plain = _dumps(doc)
        head = self._heads.get(ident)
        if head is None or head[0] != plain:
            head = self._heads[ident] = (plain, _dumps(redact(doc)))
        done = head[1] if not times else f"{head[1][:-1]},{_dumps(redact(times))[1:]}"
        self._fragments[ident] = done
        return done

    def answer(self, q: GraphQuery) -> bytes:
        """The answer to ``q`` (one :func:`kept`, in this model's window) as of the store now."""
        with self.lock:
            self.refresh()
            name = (q.level, q.split)
            view = self._views.get(name)
            if view is None or len(self._due[name][0]) > len(self.rows) // 4:
                # new, or so far behind that making it again from the rows held costs less
                view = self._views[name] = _View(self, q.level, q.split)
                _settled()
            else:
                self._patch(name, view)
            self._due[name] = ({}, set())
            self._asked[name] = time.monotonic()
            return view.answer(q)

    def _patch(self, name: tuple[str, bool], view: _View) -> None:
        rows, nodes = self._due[name]
        if rows or nodes:
            view.patch({k: list(hours.items()) for k, hours in rows.items()}, nodes)
            self._due[name] = ({}, set())

    def keep_up(self, recent: float) -> None:
        """Read what changed, and take it into the levels asked in the last ``recent`` seconds
        (a map polling one level: its next answer pays only for what changed after)."""
        with self.lock:
            self.refresh()
            now = time.monotonic()
            for name, view in self._views.items():
                if now - self._asked[name] < recent:
                    self._patch(name, view)


class GraphModels:
    """A replica's models, by window and badge state; the least recently used go first. Once
    one is made, a thread reads what changed every ``KEEP_UP`` seconds and takes it into the
    levels asked lately, so the answer right after agents' batches pays for those batches, not
    for all since the last answer."""

    SIZE = 3
    KEEP_UP = 1.0
    RECENT = 3.0  # levels asked within: patched by the thread too (others when asked)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: OrderedDict[Any, GraphModel] = OrderedDict()
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def answer(self, store: Store, policies: PolicyCache, q: GraphQuery, badges: Any) -> bytes:
        start = ALL_TIME if q.since is None else hour_of(q.since)
        key = (start, badges)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                wider = [
                    m
                    for (s, b), m in self._models.items()
                    if b == badges and s != ALL_TIME and start != ALL_TIME and s < start
                ]
                model = self._models[key] = (
                    wider[-1].narrowed(start)
                    if wider
                    else GraphModel(store, Context(store, policies), start)
                )
                if self._keeper is None and not self._closed.is_set():
                    self._keeper = threading.Thread(
                        target=self._keep_up, name="graph-models", daemon=True
                    )
                    self._keeper.start()
            self._models.move_to_end(key)
            while len(self._models) > self.SIZE:
                self._models.popitem(last=False)
        return model.answer(q)

    def _keep_up(self) -> None:
        while not self._closed.wait(self.KEEP_UP):
            self._keep_all()

    def _keep_all(self) -> None:
        # its own frame: no model dropped meanwhile stays referenced while the thread waits
        with self._lock:
            models = list(self._models.values())
        for model in models:
            if self._closed.is_set():
                return
            try:
                model.keep_up(self.RECENT)
            except Exception:  # the store away for a while: the next request reads it
                log.warning("keeping the graph up with the store failed", exc_info=True)

    def close(self) -> None:
        """Stop keeping up (the controller shuts down)."""
        self._closed.set()
        if self._keeper is not None:
            self._keeper.join(timeout=30)
