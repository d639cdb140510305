"""The connection graph endpoint over a synthetic store of 2,000 workloads and 20,000 edges,
through a real ``stockade controller`` on loopback (HTTPS, its generated CA), at each level, next
to a baseline measured in the same run: the same workload-level graph grouped in SQL straight
from the raw connections (what the maintained aggregate saves every request).

    python benchmarks/graph.py [--workloads 2000] [--edges 20000] [--per-edge 5] [--hours 24]
                               [--requests 100] [--rounds 3] [--batch 200] [--cache-dir DIR]

The store (SQLite) is built once through the controller's ingestion path (connection records
parsed, masked and stored by id, the aggregate upserted in the same transaction, 1,000 a batch)
and kept in the cache directory: 20 namespaces of workloads with labels, a firewall policy of
groups over them, some quarantined, a scan summary with critical vulnerabilities, external
addresses (public and private), each edge carrying ``--per-edge`` connections spread over the
last ``--hours`` hours, a tenth in TLS, violations, blocks and DLP hits on a few percent.

Each round asks per level: with nothing changed, ``--requests`` times for the default window
(all time: the aggregate's totals) and for ``since=24h``; then, a fifth as often, right after an
agent batch (``--batch`` connections, most on known edges, a few new edges, a new workload and
a few firewall and DLP events, stored by this process as another replica would) for the
default window, for what the console's map asks (``since=24h&split=encryption``) and for the
map's ``allow_stale``. The baseline query runs a tenth as often. Medians of the rounds' p50 and
p99, the load average before and after. Target: p99 under 200 ms at every level, with the
default window, unchanged and right after a batch.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from ingest import _pct, start_controller  # noqa: E402  (the house's controller and percentile)
from sqlalchemy import func, select, text  # noqa: E402

from stockade.api.auth import Principal, create_token  # noqa: E402
from stockade.firewall.policy.files import parse_texts  # noqa: E402
from stockade.firewall.policy.store import apply_policy, set_quarantine  # noqa: E402
from stockade.model import Event, ResourceRef, Severity  # noqa: E402
from stockade.network import received  # noqa: E402
from stockade.network.tables import connections, graph_edges  # noqa: E402
from stockade.store import Store, open_store  # noqa: E402
from stockade.store.records import record_events  # noqa: E402

NAMESPACES = [f"team-{i}" for i in range(20)]
TIERS = ["web", "api", "db", "cache", "batch"]
LEVELS = ("workload", "group", "namespace")
MAP = {"since": "24h", "split": "encryption"}  # what the console's map asks
# nothing changed: all time (the default, read from the totals), the last 24 hours (the answer
# cache serves both again); right after an agent batch: all time, as the map asks, and as the
# map asks with allow_stale=1 (the previous answer, at most 10 s old, while the new one is made)
WINDOWS = {
    "all": {},
    "24h": {"since": "24h"},
    "after-batch all": {},
    "after-batch map": MAP,
    "after-batch stale": {**MAP, "allow_stale": "1"},
}
CHANGED = tuple(w for w in WINDOWS if w.startswith("after-batch"))


def _workloads(n: int) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (
            NAMESPACES[i % len(NAMESPACES)],
            f"svc-{i}",
            {"tier": TIERS[i % len(TIERS)], "app": f"a{i}"},
        )
        for i in range(n)
    ]


def _policy() -> str:
    groups = []
    for i, ns in enumerate(NAMESPACES):
        for j, tier in enumerate(TIERS):
            mode = ("discover", "monitor", "protect")[(i + j) % 3]
            groups.append(
                f"    - {{name: {ns}-{tier}, selector: {{namespace: {ns}, labels: {{tier: {tier}}}}}, mode: {mode}}}"
            )
    groups.append("    - {name: partners, selector: {cidrs: [10.200.0.0/16]}, mode: monitor}")
    return (
        "apiVersion: stockade.dev/v1\nkind: FirewallPolicy\nmetadata: {name: bench}\nspec:\n"
        "  groups:\n" + "\n".join(groups) + "\n  rules: []\n"
    )


def _endpoint(w: tuple[str, str, dict[str, str]] | str, ip: str) -> dict[str, Any]:
    if isinstance(w, str):
        return {"ip": ip, "port": 443, "kind": "external", "name": w}
    ns, name, labels = w
    return {"ip": ip, "port": 40000, "kind": "pod", "name": name, "namespace": ns, "labels": labels}


def _ip(i: int) -> str:
    return f"10.{1 + i // 65536 % 200}.{i // 256 % 256}.{i % 256}"


EXTERNALS = [f"93.184.{i // 256}.{i % 256}" for i in range(200)] + [
    f"10.200.0.{i}" for i in range(50)
]


def _pairs(rnd: random.Random, workloads: int, edges: int) -> list[tuple[int, int]]:
    """Client and server indexes of the edges (servers past the workloads are EXTERNALS)."""
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < edges:
        a = rnd.randrange(workloads)
        b = (
            rnd.randrange(workloads + len(EXTERNALS))
            if rnd.random() < 0.1
            else rnd.randrange(workloads)
        )
        if a != b:
            pairs.add((a, b))
    return sorted(pairs)


def _traffic(
    rnd: random.Random,
    wls: list[tuple[str, str, dict[str, str]]],
    pairs: list[tuple[int, int]],
    per_edge: int,
    spread: timedelta,
    events: float,
) -> tuple[list[dict[str, Any]], list[Event]]:
    """``per_edge`` connection records on each pair in the last ``spread``, and a firewall or DLP
    event on a share ``events`` of the pairs."""
    now = datetime.now(UTC)
    docs: list[dict[str, Any]] = []
    evs: list[Event] = []
    for a, b in pairs:
        src = wls[a]
        dst: Any = wls[b] if b < len(wls) else EXTERNALS[b - len(wls)]
        dst_ip = _ip(b) if b < len(wls) else EXTERNALS[b - len(wls)]
        tls = (a * 31 + b) % 10 == 0  # an edge is TLS or not, whichever batch reports it
        port = 443 if tls else (80, 5432, 6379, 8080, 9092)[(a + b) % 5]
        for _ in range(per_edge):
            at = now - timedelta(seconds=rnd.uniform(0, spread.total_seconds()))
            docs.append(
                {
                    "id": uuid.uuid4().hex,
                    "start": at.isoformat(),
                    "end": (at + timedelta(seconds=2)).isoformat(),
                    "transport": "tcp",
                    "ip_version": 4,
                    "client": _endpoint(src, _ip(a)),
                    "server": {**_endpoint(dst, dst_ip), "port": port},
                    "protocol": "proto.tls" if tls else "proto.http",
                    "encrypted": tls,
                    "tls": {"version": "TLS1.3", "sni": "api.example"} if tls else None,
                    "bytes": {"to_server": rnd.randrange(100, 10_000), "to_client": 4096},
                    "packets": {"to_server": 5, "to_client": 5},
                    "state": "closed",
                    "dlp": [],
                }
            )
        roll = rnd.random()
        if roll < events:
            kind = ("firewall.violation", "firewall.blocked", "dlp.sensitive_in_clear")[
                int(roll * 1000) % 3
            ]
            evs.append(
                Event(
                    kind=kind,
                    severity=Severity.HIGH,
                    source="enforcer",
                    message=f"{kind} bench",
                    at=now - timedelta(seconds=rnd.uniform(0, spread.total_seconds())),
                    resource=ResourceRef(kind="pod", name=src[1], namespace=src[0]),
                    peer=ResourceRef(kind="external", name=dst)
                    if isinstance(dst, str)
                    else ResourceRef(kind="pod", name=dst[1], namespace=dst[0]),
                    data={"port": port, "app": "proto.http", "sensor": "dlp.payment_card"},
                )
            )
    return docs, evs


def build_store(path: Path, opts: argparse.Namespace) -> float:
    t0 = time.perf_counter()
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{tmp}")
    rnd = random.Random(7)
    wls = _workloads(opts.workloads)
    pairs = _pairs(rnd, len(wls), opts.edges)
    docs, evs = _traffic(rnd, wls, pairs, opts.per_edge, timedelta(hours=opts.hours), 0.08)
    for i in range(0, len(docs), 1000):
        rows = received.parse_records(docs[i : i + 1000])
        with store.begin() as conn:
            received.store_new(conn, rows, [])
    record_events(store, evs)
    with store.begin() as conn:  # what the firewall's events add to the edges
        received.store_new(conn, [], evs)
    policy = _policy()
    apply_policy(store, parse_texts([("bench", policy)]), policy)
    for ns, name, _ in wls[:: max(1, len(wls) // 20)]:
        set_quarantine(store, f"{ns}/{name}", [], "bench")
    scan = Event(
        kind="scan.completed",
        message="bench scan",
        source="bench",
        data={
            "image": "reg/app:1",
            "counts": {"critical": 4, "high": 9},
            "images": {f"{ns}/{name}": "reg/app:1" for ns, name, _ in wls[::4]},
        },
    )
    record_events(store, [scan])
    with store.begin() as conn:
        conn.execute(text("ANALYZE"))
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(path)
    return time.perf_counter() - t0


def baseline(store: Store, since: datetime) -> float:
    """The workload-level edges grouped in SQL from the raw connections; milliseconds."""
    c = connections.c
    q = (
        select(
            c.client_namespace,
            c.client_name,
            c.server_namespace,
            c.server_name,
            c.encrypted,
            func.count(),
            func.sum(c.bytes_to_server + c.bytes_to_client),
            func.min(c.start),
            func.max(c.end),
            func.group_concat(c.server_port.distinct()),
            func.group_concat(c.protocol.distinct()),
        )
        .where(c.start >= since)
        .group_by(c.client_namespace, c.client_name, c.server_namespace, c.server_name, c.encrypted)
    )
    t0 = time.perf_counter()
    with store.connect() as conn:
        rows = conn.execute(q).all()
    assert rows
    return (time.perf_counter() - t0) * 1000


class Batches:
    """Agent batches as the controller takes them: ``size`` connections of the last minute, most
    on edges the store has, a few on new edges, one of them from a new workload, and a firewall
    or DLP event on a few percent; stored by this process, as another replica would."""

    def __init__(self, store: Store, opts: argparse.Namespace) -> None:
        self.store = store
        self.size = opts.batch
        self.wls = _workloads(opts.workloads)
        self.pairs = _pairs(random.Random(7), len(self.wls), opts.edges)
        self.rnd = random.Random()
        self.new = 0

    def send(self) -> None:
        rnd, n = self.rnd, len(self.wls)
        known = rnd.sample(self.pairs, self.size - 5)
        fresh = [(rnd.randrange(n), rnd.randrange(n)) for _ in range(4)]
        self.new += 1
        newcomer = ("team-new", f"new-{os.getpid()}-{self.new}", {"tier": "web"})
        docs, evs = _traffic(rnd, self.wls, known + fresh, 1, timedelta(minutes=1), events=0.03)
        extra, _ = _traffic(
            rnd, [*self.wls, newcomer], [(n, rnd.randrange(n))], 1, timedelta(minutes=1), 0
        )
        rows = received.parse_records(docs + extra)
        record_events(self.store, evs)
        with self.store.begin() as conn:
            received.store_new(conn, rows, evs)


def bench(path: Path, opts: argparse.Namespace) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
        work = Path(tmp)
        copy = work / "graph.db"  # the batches go into a copy: the cached store stays as built
        shutil.copyfile(path, copy)
        return _bench(copy, work, opts)


def _bench(path: Path, work: Path, opts: argparse.Namespace) -> dict[str, list[float]]:
    url = f"sqlite:///{path}"
    store = open_store(url)
    with store.connect() as conn:
        held = conn.execute(select(func.count()).select_from(connections)).scalar_one()
        rows = conn.execute(select(func.count()).select_from(graph_edges)).scalar_one()
    admin = Principal(name="bench", role="admin", via="cli")
    _, token = create_token(
        store, name=f"bench-{uuid.uuid4().hex[:12]}", role="reader", actor=admin
    )
    print(f"store: {held} connections, {rows} aggregate rows (edges x hours x encryption)")
    results: dict[str, list[float]] = {
        f"{lv} {w} p{p}": [] for lv in LEVELS for w in WINDOWS for p in (50, 99)
    }
    results.update({"baseline p50": [], "baseline p99": []})
    batches = Batches(store, opts)
    with (work / "controller.log").open("wb") as log:
        proc, base = start_controller(url, work, log)
        try:
            tls = ssl.create_default_context(cafile=str(work / "tls" / "ca.crt"))
            with httpx.Client(
                base_url=base,
                verify=tls,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ) as client:
                for lv in LEVELS:  # warm up; show the size of each answer
                    for extra in ({}, MAP):  # a replica's first answer: its model read
                        t0 = time.perf_counter()
                        doc = client.get("/api/v1/graph", params={"level": lv, **extra}).json()
                        took = (time.perf_counter() - t0) * 1000
                        print(
                            f"  level {lv:9} {'map' if extra else 'all':3}: "
                            f"{len(doc['nodes']):5} nodes, {len(doc['edges']):6} edges, "
                            f"first answer {took:.0f} ms"
                        )
                for r in range(opts.rounds):
                    for lv in LEVELS:
                        for w, extra in WINDOWS.items():
                            lat = []
                            n = opts.requests if w not in CHANGED else max(5, opts.requests // 5)
                            if w in CHANGED:  # as a client polling this level would have
                                batches.send()
                            # "unchanged store": its answer built once
                            client.get(
                                "/api/v1/graph", params={"level": lv, **extra}
                            ).raise_for_status()
                            for _ in range(n):
                                if w in CHANGED:  # an agent batch, then the request
                                    batches.send()
                                t0 = time.perf_counter()
                                client.get(
                                    "/api/v1/graph", params={"level": lv, **extra}
                                ).raise_for_status()
                                lat.append((time.perf_counter() - t0) * 1000)
                            lat.sort()
                            results[f"{lv} {w} p50"].append(_pct(lat, 50))
                            results[f"{lv} {w} p99"].append(_pct(lat, 99))
                    since = datetime.now(UTC) - timedelta(hours=24)
                    lat = sorted(baseline(store, since) for _ in range(max(5, opts.requests // 10)))
                    results["baseline p50"].append(_pct(lat, 50))
                    results["baseline p99"].append(_pct(lat, 99))
                    print(
                        f"  round {r + 1}: "
                        + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in results.items())
                    )
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except Exception:
                proc.kill()
                proc.wait()
    store.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=2000)
    ap.add_argument("--edges", type=int, default=20_000)
    ap.add_argument("--per-edge", type=int, default=5, help="connections an edge")
    ap.add_argument("--hours", type=float, default=24, help="connections spread over")
    ap.add_argument("--requests", type=int, default=100, help="requests a level a round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=200, help="connections an agent batch")
    ap.add_argument(
        "--cache-dir",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stockade"),
        help="where the synthetic store is kept between runs",
    )
    opts = ap.parse_args()
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    cache = Path(opts.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    # "v2": rows stamped with their version (a store of the schema before is not reused)
    name = f"graph-v2-{opts.workloads}-{opts.edges}-{opts.per_edge}-{opts.hours:g}.db"
    path = cache / name
    if path.exists() and path.stat().st_mtime > time.time() - 3600:
        print(f"store: {path} (reused; built less than an hour ago)")
    else:
        path.unlink(missing_ok=True)  # older: its hours would fall out of the 24h window
        took = build_store(path, opts)
        n = opts.edges * opts.per_edge
        print(f"store: {path} built in {took:.1f} s ({n} connections, {n / took:.0f}/s ingested)")
    results = bench(path, opts)
    med = {k: statistics.median(v) for k, v in results.items()}
    for lv in LEVELS:
        for w in WINDOWS:
            ratio = med[f"{lv} {w} p50"] / med["baseline p50"]
            print(
                f"graph level={lv:9} {w:17}  p50 {med[f'{lv} {w} p50']:7.1f} ms  "
                f"p99 {med[f'{lv} {w} p99']:7.1f} ms   p50 ratio to baseline {ratio:5.2f}"
            )
    print(
        f"baseline (SQL GROUP BY over raw connections of 24h, in-process, no HTTP)  "
        f"p50 {med['baseline p50']:7.1f} ms  p99 {med['baseline p99']:7.1f} ms"
    )
    for lv in LEVELS:
        told = ", ".join(
            f"{w} {med[f'{lv} {w} p99']:.1f} ms "
            + ("OK" if med[f"{lv} {w} p99"] < 200 else "MISSED")
            for w in ("all", *CHANGED)
        )
        print(f"target: graph level={lv} p99 < 200 ms: {told}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
