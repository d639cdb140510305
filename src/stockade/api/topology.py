"""Who the graph's nodes are: each workload's firewall groups and mode, whether it is
quarantined and how many critical vulnerabilities its image has (when a scan said), and the
graph itself at the workload, group or namespace level, built from the network pillar's
maintained aggregate (:mod:`stockade.network.graph`).

Node ids are stable across requests (``wl:NS/NAME``, ``ext:ADDRESS``, ``internet``,
``ns:NAMESPACE``, ``grp:GROUP``) and an edge's id is ``SOURCE>TARGET``, so a map can apply
updates to what it drew.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from stockade.firewall.policy.files import parse_texts
from stockade.firewall.policy.store import load_policy, quarantined
from stockade.model import ConfigError
from stockade.network.graph import EdgeRow, NodeRow, edge_rows, is_internet, node_rows
from stockade.store import Store
from stockade.store.tables import events

if TYPE_CHECKING:
    from stockade.firewall.policy.model import Group, Policy

# The firewall's policy engine (and its models) is imported where a group is matched: a
# controller loads it with the first graph drawn under a policy, not at its start.

LEVELS = ("workload", "group", "namespace")
SCANS_READ = 1000  # newest scan summaries read for the critical-vulnerability badge


class PolicyCache:
    """The stored firewall policy, parsed once per version, and the groups each node is in under
    it (a node's labels and address are part of the key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._policy: Policy | None = None
        self.groups: dict[tuple[str, str, str | None], tuple[Group, ...]] = {}

    def get(self, store: Store) -> Policy | None:
        found = load_policy(store)
        if found is None:
            return None
        text, version = found
        with self._lock:
            if version != self._version:
                try:
                    self._policy = parse_texts([("firewall policy", text)])
                except ConfigError:
                    self._policy = None  # applied by a newer Stockade: no groups rather than 500
                self._version = version
                self.groups = {}
            return self._policy


def _critical_by_workload(store: Store) -> dict[str, int]:
    """``ns/name`` -> critical vulnerabilities of its image, from the newest scan summaries."""
    q = (
        select(events.c.data)
        .where(events.c.kind == "scan.completed")
        .order_by(events.c.at.desc())
        .limit(SCANS_READ)
    )
    out: dict[str, int] = {}
    with store.connect() as conn:
        for (data,) in conn.execute(q):
            if not isinstance(data, dict):
                continue
            images, counts = data.get("images"), data.get("counts")
            if not isinstance(images, dict) or not isinstance(counts, dict):
                continue
            critical = counts.get("critical", 0)
            for workload in images:
                if isinstance(workload, str) and isinstance(critical, int):
                    out.setdefault(workload, critical)  # newest first: the newest scan wins
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Badges:
    groups: tuple[str, ...] = ()
    mode: str | None = None  # the most restrictive mode of its groups; None: no group
    quarantined: bool = False
    critical: int | None = None  # None: no scan of its image known


class Context:
    """What a request needs to know about nodes: policy groups, quarantines, scans."""

    def __init__(self, store: Store, policies: PolicyCache) -> None:
        self.policy = policies.get(store)
        self._groups = policies.groups if len(policies.groups) < 200_000 else {}
        self.quarantined = {str(q["workload"]) for q in quarantined(store)}
        self.critical = _critical_by_workload(store)
        self._badges: dict[str, Badges] = {}

    def groups(self, node: NodeRow) -> tuple[Group, ...]:
        if self.policy is None:
            return ()
        key = (node.id, repr(sorted(node.labels.items())), node.address)
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = self._match(node)
        return found

    def _match(self, node: NodeRow) -> tuple[Group, ...]:
        from stockade.firewall.policy.engine import Endpoint, groups_of, selects

        assert self.policy is not None
        external = node.kind == "external"
        ip = node.name if external else (node.address or "")
        ep = Endpoint(
            ip=ip,
            name="" if external else node.name,
            namespace=node.namespace or "",
            labels=node.labels,
            external=external,
        )
        try:
            return groups_of(self.policy, ep, {})
        except ValueError:  # no address known: only selectors of names and labels can match
            return tuple(
                g
                for g in self.policy.spec.groups
                if not (g.selector.cidrs or g.selector.dns) and selects(g.selector, ep, {})
            )

    def forget(self, ident: str) -> None:
        """Drop what is known of node ``ident`` (its labels or address changed)."""
        self._badges.pop(ident, None)

    def badges(self, node: NodeRow) -> Badges:
        found = self._badges.get(node.id)
        if found is None:
            from stockade.firewall.policy.engine import effective_mode

            groups = self.groups(node)
            workload = f"{node.namespace or ''}/{node.name}"
            found = Badges(
                groups=tuple(g.name for g in groups),
                mode=effective_mode(groups, ()),
                quarantined=node.kind == "workload" and workload in self.quarantined,
                critical=self.critical.get(workload) if node.kind == "workload" else None,
            )
            self._badges[node.id] = found
        return found

    def group_mode(self, name: str) -> str | None:
        if self.policy is None:
            return None
        return next((g.mode for g in self.policy.spec.groups if g.name == name), None)


def workload_doc(node: NodeRow, b: Badges) -> dict[str, Any]:
    if node.kind == "external":
        return {
            "id": node.id,
            "kind": "external",
            "name": node.name,
            "internet": is_internet(node.name),
            "groups": list(b.groups),
        }
    return {
        "id": node.id,
        "kind": "workload",
        "namespace": node.namespace,
        "name": node.name,
        "labels": node.labels,
        "address": node.address,
        "groups": list(b.groups),
        "mode": b.mode,
        "quarantined": b.quarantined,
        "critical": b.critical,
        "first_seen": node.first_seen.isoformat(),
        "last_seen": node.last_seen.isoformat(),
    }


@dataclass(slots=True)
class _Agg:
    connections: int = 0
    clear: int = 0
    tls: int = 0
    violations: int = 0
    blocked: int = 0
    bytes: int = 0
    ports: set[str] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    dlp: dict[str, int] = field(default_factory=dict)
    first: str = ""
    last: str = ""

    def add(self, r: EdgeRow) -> None:
        self.connections += r.connections
        if r.encryption == "clear":
            self.clear += r.connections
        elif r.encryption == "tls":
            self.tls += r.connections
        self.violations += r.violations
        self.blocked += r.blocked
        self.bytes += r.bytes
        self.ports.update(r.ports)
        self.protocols.update(r.protocols)
        for sensor, n in r.dlp.items():
            self.dlp[sensor] = self.dlp.get(sensor, 0) + n
        self.first = min(self.first, r.first_seen) if self.first else r.first_seen
        self.last = max(self.last, r.last_seen)

    def doc(self, source: str, target: str, *, split: str = "") -> dict[str, Any]:
        """The edge; with ``split`` (its encryption) one of several between the two nodes, its id
        ``SOURCE>TARGET#ENCRYPTION``."""
        # a DLP hit is evidence of bytes in clear (the sensors only see what travels in clear),
        # even before a connection record of that traffic has been counted
        clear = self.clear or any(self.dlp.values())
        if clear and self.tls:
            encryption = "mixed"
        else:
            encryption = "clear" if clear else "tls" if self.tls else "unknown"
        status = "blocked" if self.blocked else "violation" if self.violations else "ok"
        return {
            "id": f"{source}>{target}" + (f"#{split}" if split else ""),
            "source": source,
            "target": target,
            "status": status,
            "encryption": encryption,
            "connections": self.connections,
            "clear": self.clear,
            "tls": self.tls,
            "violations": self.violations,
            "blocked": self.blocked,
            "bytes": self.bytes,
            "ports": sorted(self.ports),
            "protocols": sorted(self.protocols),
            "dlp": dict(sorted(self.dlp.items())),
            "dlp_hits": sum(self.dlp.values()),
            "first_seen": self.first,
            "last_seen": self.last,
        }


class _Level:
    """Maps workload-level nodes to the nodes of one level and describes those."""

    def __init__(self, level: str, ctx: Context) -> None:
        self.level = level
        self.ctx = ctx
        self.ids: dict[str, str] = {}
        self.docs: dict[str, dict[str, Any]] = {}

    def of(self, node: NodeRow) -> str:
        found = self.ids.get(node.id)
        if found is None:
            found = self.ids[node.id] = self._place(node)
        return found

    def _place(self, node: NodeRow) -> str:
        b = self.ctx.badges(node)
        ident = level_id(self.level, node, b)
        if ident == node.id:
            self.docs[node.id] = workload_doc(node, b)
            return ident
        if ident.startswith("grp:"):
            doc = self.docs.get(ident) or self.docs.setdefault(
                ident,
                {
                    "id": ident,
                    "kind": "group",
                    "name": b.groups[0],
                    "mode": self.ctx.group_mode(b.groups[0]),
                },
            )
        elif ident == "internet":
            doc = self.docs.setdefault(ident, {"id": ident, "kind": "internet", "name": "internet"})
        else:
            namespace = node.namespace or ""
            doc = self.docs.setdefault(
                ident, {"id": ident, "kind": "namespace", "name": namespace, "modes": {}}
            )
            if b.mode is not None:
                doc["modes"][b.mode] = doc["modes"].get(b.mode, 0) + 1
        doc["members"] = doc.get("members", 0) + 1
        if node.kind == "workload":
            doc["quarantined"] = doc.get("quarantined", 0) + int(b.quarantined)
            if b.critical is not None:
                doc["critical"] = doc.get("critical", 0) + b.critical
        return ident

    def finished(self, shown: set[str]) -> list[dict[str, Any]]:
        """The docs of the ``shown`` nodes, in the order of their ids."""
        out = []
        for ident in sorted(shown & self.docs.keys()):
            doc = self.docs[ident]
            if "modes" in doc:
                doc["modes"] = dict(sorted(doc["modes"].items()))
            out.append(doc)
        return out


def level_id(level: str, node: NodeRow, b: Badges) -> str:
    """The id of the node that stands for ``node`` at ``level``."""
    if level == "workload":
        return node.id
    if level == "group" and b.groups:
        return f"grp:{b.groups[0]}"  # its first group in policy order
    if node.kind == "external":
        return "internet" if is_internet(node.name) else node.id
    return f"ns:{node.namespace or ''}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphQuery:
    level: str = "workload"
    since: datetime | None = None
    namespace: str | None = None
    encryption: str | None = None  # "clear" or "tls"
    violations: bool = False
    split: bool = False  # one edge per encryption (clear, tls, unknown) between two nodes


def build_graph(store: Store, ctx: Context, q: GraphQuery) -> dict[str, Any]:
    """The graph ``q`` asks for: nodes and edges aggregated at its level."""
    with store.connect() as conn:
        rows = edge_rows(conn, since=q.since, encryption=q.encryption)
        nodes = node_rows(conn)
    level = _Level(q.level, ctx)
    aggs: dict[tuple[str, str, str], _Agg] = {}
    for r in rows:
        src, dst = nodes.get(r.src), nodes.get(r.dst)
        if src is None or dst is None:
            continue
        if q.namespace is not None and q.namespace not in (src.namespace, dst.namespace):
            continue
        key = (level.of(src), level.of(dst), r.encryption if q.split else "")
        agg = aggs.get(key)
        if agg is None:
            agg = aggs[key] = _Agg()
        agg.add(r)
    edges = [
        agg.doc(a, b, split=enc)
        for (a, b, enc), agg in aggs.items()
        if not q.violations or agg.violations or agg.blocked
    ]
    edges.sort(key=lambda e: str(e["id"]))  # an order every replica and the model agree on
    if not q.violations and q.encryption is None:
        for node in _quiet_workloads(nodes.values(), q):
            level.of(node)  # a workload seen in the window without edges is still on the map
    shown = {e["source"] for e in edges} | {e["target"] for e in edges}
    if not q.violations and q.encryption is None:
        shown |= set(level.ids.values())
    return {
        "level": q.level,
        "since": q.since.isoformat() if q.since else None,
        "nodes": level.finished(shown),
        "edges": edges,
    }


def _quiet_workloads(nodes: Iterable[NodeRow], q: GraphQuery) -> Iterable[NodeRow]:
    for n in nodes:
        if n.kind != "workload" or (q.since is not None and n.last_seen < q.since):
            continue
        if q.namespace is None or n.namespace == q.namespace:
            yield n


def workload_edges(store: Store, ident: str, since: datetime | None) -> list[dict[str, Any]]:
    """The workload-level edges to and from one node."""
    with store.connect() as conn:
        rows = edge_rows(conn, since=since, node=ident)
    aggs: dict[tuple[str, str], _Agg] = {}
    for r in rows:
        aggs.setdefault((r.src, r.dst), _Agg()).add(r)
    return [agg.doc(a, b) for (a, b), agg in sorted(aggs.items())]
