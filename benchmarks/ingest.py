"""Event ingestion into SQLite and PostgreSQL through the controller's path, next to a plain
SQLAlchemy ``executemany`` of the same rows into the same table (the baseline, measured in the
same run), and the events API latency over a store of 1,000,000 events.

    python benchmarks/ingest.py [--events 20000] [--batch 500] [--rounds 5] [--no-pg] [--agents N]
                                [--stored 1000000] [--requests 2000] [--pages 10]
                                [--cache-dir DIR] [--skip-ingest] [--skip-api]
                                [--http-workers 1,2]

Ingestion: each round empties the table, then stores ``--events`` events in batches of
``--batch``, once with ``take_batch`` from the request bodies an agent sends (what
``POST /api/v1/agents/events`` does before it answers: JSON decoding and the envelope's
validation, the masking gate over every string, the batch's ``COPY`` into ``events`` under a
savepoint on PostgreSQL (``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` at a stored id;
the only path on SQLite), the connection graph's aggregate updated from the events in the same transaction, the heartbeat; only
HTTP and TLS are left out) and once with ``conn.execute(insert(events), rows)`` of the very rows it
writes (same columns, already masked: the baseline does no parsing, masking, conflict check or
graph); the order alternates between rounds; medians. Each round also stores the same rows with
the store's own insert alone (``store.bulk.insert_new_rows``: what the path cannot beat). PostgreSQL is STOCKADE_TEST_PG, in a schema of this process's
own (created, then dropped; ``public`` is never touched). Targets: at least 0.5 of executemany,
and at least 20,000 events/s on PostgreSQL (the single-stream figures). With ``--agents N``
(N > 1), each round also stores the same events as N agents posting at once, each its own
batches, in N threads of this process (as the controller's thread pool takes concurrent posts),
next to executemany in N threads: printed apart, labelled as such. Every path also prints this
process's CPU time a stored event (medians; the database server's CPU is not in it): on a shared
machine the steadiest figure, and the one to compare between two trees run one after the other.
On PostgreSQL the server's CPU a stored event is printed too (every postgres process of this
machine: run it alone); the two added are what a stored event costs the machine's cores
(the figures of session 10, and what they left between here and 20,000 events/s, are in
docs/controller.md, "How fast").

Over HTTPS (``--http-workers 1,2``): the same events posted by ``--agents`` processes, each its
own keep-alive connection and batches, to a real ``stockade controller --workers N`` on
PostgreSQL (a fresh schema each round, the orders alternating), for each N given: the whole
path an agent's batch takes, TLS and HTTP included, and the gain of worker processes.

Events API: a SQLite store of ``--stored`` events, built once with executemany and kept in the
cache directory, served by a real ``stockade controller`` on loopback (HTTPS, its generated CA);
``--requests`` GETs of ``/api/v1/events?limit=100`` with filters (category, level, both, kind,
namespace, none), each filter followed through up to ``--pages`` pages by its cursor, on one
httpx client. Target: p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
from sqlalchemy import create_engine, delete, func, insert, select, text  # noqa: E402

from stockade.api.agents import take_batch  # noqa: E402
from stockade.api.auth import Principal, create_token  # noqa: E402
from stockade.model import Event, ResourceRef, Severity  # noqa: E402
from stockade.store import Store, open_store  # noqa: E402
from stockade.store.bulk import insert_new_rows  # noqa: E402
from stockade.store.db import normalize_url  # noqa: E402
from stockade.store.records import _event_row  # noqa: E402  (the rows the store writes)
from stockade.store.tables import events  # noqa: E402

PG_URL = os.environ.get(
    "STOCKADE_TEST_PG", "postgresql://stockade:stockade@127.0.0.1:5432/stockade_test"
)
KINDS = [  # (kind, weight): a sensor-heavy mix
    ("dlp.sensitive_in_clear", 20),
    ("firewall.denied", 30),
    ("firewall.allowed", 20),
    ("tls.weak_version", 8),
    ("process.unexpected", 10),
    ("audit.token_created", 4),
    ("scan.critical_vulnerability", 8),
]
LEVELS = [  # (severity, weight): critical is rare
    (Severity.NEGLIGIBLE, 30),
    (Severity.LOW, 30),
    (Severity.MEDIUM, 25),
    (Severity.HIGH, 13),
    (Severity.CRITICAL, 2),
]
NAMESPACES = [f"team-{i}" for i in range(20)]


def _cycle(pairs: list[tuple[Any, int]]) -> list[Any]:
    return [v for v, w in pairs for _ in range(w)]


def make_event(i: int, at: datetime) -> Event:
    """Event ``i``, as an agent sends it: a resource, a peer, a little data (a masked card)."""
    kinds, levels = _cycle(KINDS), _cycle(LEVELS)
    kind = kinds[(i * 7) % len(kinds)]
    ns = NAMESPACES[i % len(NAMESPACES)]
    return Event(
        kind=kind,
        message=f"{kind} from pod web-{i % 500} to 10.1.{i % 250}.{i % 200}:443",
        severity=levels[(i * 13) % len(levels)],
        source="sensor",
        resource=ResourceRef(kind="pod", name=f"web-{i % 500}", namespace=ns),
        peer=ResourceRef(kind="pod", name=f"db-{i % 50}", namespace="data"),
        data={"bytes": 512 + i % 4096, "port": 443, "sample": "4111 11** **** 1111", "seq": i},
        at=at,  # the id: the Event's own, as an agent makes it (time-ordered)
        node=f"node-{i % 3}",
        action="alert",
        mode="monitor",
    )


# ---------------------------------------------------------------- ingestion


def _pg_schema_url(schema: str) -> str:
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def _drop_pg_schema(schema: str) -> None:
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def _empty(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(delete(events))
    if store.dialect == "postgresql":  # dead rows of the previous round would tax the next
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE events"))


# this process's CPU time a round, by path: what the load average of a shared machine does not
# blur (the database server's CPU is not in it)
CPU: dict[str, list[float]] = {}
# PostgreSQL: the server's CPU time a round, every postgres process of this machine (its background
# writers too, and any other client's load on the same server: run it alone)
SERVER_CPU: dict[str, list[float]] = {}
TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float]]:
    """Every process of this machine: pid -> (name, parent pid, CPU seconds, user and system)."""
    found: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, fields = raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()
        found[int(entry)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return found


def _postgres_cpu() -> float:
    """CPU seconds of every process named postgres on this machine."""
    return sum(cpu for name, _, cpu in _processes().values() if name.startswith("postgres"))


def _rate(store: Store, batches: list[Any], write: Any, n: int) -> float:
    _empty(store)
    pg = store.dialect == "postgresql"
    s0 = _postgres_cpu() if pg else 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        write(store, b)
    elapsed = time.perf_counter() - t0
    CPU.setdefault(write.__name__, []).append((time.process_time() - c0) / n * 1e6)
    if pg:
        SERVER_CPU.setdefault(write.__name__, []).append((_postgres_cpu() - s0) / n * 1e6)
    with store.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(events)).scalar_one()
    if stored != n:
        sys.exit(f"stored {stored} events, expected {n}")
    return n / elapsed


def _executemany(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.begin() as conn:
        conn.execute(insert(events), rows)


def _rows_only(store: Store, rows: list[dict[str, Any]]) -> None:
    """The store's own insert of rows built beforehand (COPY and the conflict-checked insert on
    PostgreSQL): the ceiling of the path, with no decoding, validation, masking or graph."""
    with store.begin() as conn:
        insert_new_rows(conn, rows)


def _ingest_path(store: Store, body: bytes) -> None:
    taken = take_batch(store, body, token_name="bench")
    assert taken.stored.accepted == len(taken.batch.events)


def _at_once(write: Any, agents: int) -> Any:
    """``write`` of a round's batches by ``agents`` threads at once, batch ``j`` by thread
    ``j % agents`` in order (the controller takes concurrent posts on its thread pool; psycopg
    lets go of the GIL while it waits for the server)."""

    def at_once(store: Store, batches: list[Any]) -> None:
        def one(k: int) -> None:
            for b in batches[k::agents]:
                write(store, b)

        with ThreadPoolExecutor(agents) as pool:
            for done in [pool.submit(one, k) for k in range(agents)]:
                done.result()

    at_once.__name__ = f"{write.__name__}_x{agents}"
    return at_once


def _body(batch: list[Event], agent_name: str = "bench-agent") -> bytes:
    """The request body an agent posts (stockade.events.reporter's shape)."""
    agent = {"name": agent_name, "node": "node-0", "version": "1.0", "capabilities": ["dlp"]}
    doc = {"agent": agent, "events": [e.to_dict() for e in batch]}
    return json.dumps(doc, separators=(",", ":")).encode()


def bench_ingest(name: str, store: Store, opts: argparse.Namespace) -> tuple[float, float]:
    now = datetime.now(UTC)
    evs = [make_event(i, now - timedelta(milliseconds=i)) for i in range(opts.events)]
    stored_at = datetime.now(UTC)
    rows = [_event_row(e, stored_at) for e in evs]
    ev_batches = [_body(evs[i : i + opts.batch]) for i in range(0, len(evs), opts.batch)]
    row_batches = [rows[i : i + opts.batch] for i in range(0, len(rows), opts.batch)]
    base, ours, ceiling = [], [], []
    n, warm = len(evs), min(len(evs), 4 * opts.batch)
    _rate(store, row_batches[:4], _executemany, warm)  # warm up: connections, statement caches
    _rate(store, ev_batches[:4], _ingest_path, warm)
    CPU.clear()
    SERVER_CPU.clear()
    for r in range(opts.rounds):
        if r % 2 == 0:
            base.append(_rate(store, row_batches, _executemany, n))
            ours.append(_rate(store, ev_batches, _ingest_path, n))
        else:
            ours.append(_rate(store, ev_batches, _ingest_path, n))
            base.append(_rate(store, row_batches, _executemany, n))
        ceiling.append(_rate(store, row_batches, _rows_only, n))
    concurrent: dict[str, list[float]] = {}
    if opts.agents > 1:  # each agent names itself (its heartbeat row is its own)
        agent_bodies = [
            _body(evs[i : i + opts.batch], f"bench-agent-{(i // opts.batch) % opts.agents}")
            for i in range(0, len(evs), opts.batch)
        ]
        runs = [(_at_once(_executemany, opts.agents), row_batches),
                (_at_once(_ingest_path, opts.agents), agent_bodies)]  # fmt: skip
        for r in range(opts.rounds):
            for write, batches in runs if r % 2 == 0 else runs[::-1]:
                concurrent.setdefault(write.__name__, []).append(_rate(store, [batches], write, n))
    _empty(store)
    b, o = statistics.median(base), statistics.median(ours)
    print(f"{name:11} executemany (baseline)  {b:10.0f} events/s")
    print(f"{name:11} rows built beforehand   {statistics.median(ceiling):10.0f} events/s   "
          "(the store's insert alone: the path's ceiling)")  # fmt: skip
    print(f"{name:11} take_batch (ingestion)  {o:10.0f} events/s   ratio to baseline {o / b:5.2f}")
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(
        f"{name:11} this process's CPU a stored event: executemany "
        f"{cpu['_executemany']:.1f} us, take_batch {cpu['_ingest_path']:.1f} us, "
        f"rows built beforehand {cpu['_rows_only']:.1f} us"
    )
    if SERVER_CPU:
        server = {k: statistics.median(v) for k, v in SERVER_CPU.items()}
        print(
            f"{name:11} the server's CPU a stored event (every postgres process): executemany "
            f"{server['_executemany']:.1f} us, take_batch {server['_ingest_path']:.1f} us, "
            f"rows built beforehand {server['_rows_only']:.1f} us"
        )
    if concurrent:
        k = opts.agents
        cb = statistics.median(concurrent[f"_executemany_x{k}"])
        co = statistics.median(concurrent[f"_ingest_path_x{k}"])
        print(f"{name:11} {k} agents at once (threads of one process, each its own batches):")
        print(f"{name:11}   executemany           {cb:10.0f} events/s")
        print(f"{name:11}   take_batch            {co:10.0f} events/s   ratio to it {co / cb:5.2f}"
              f"   ({co / b:4.2f} of one executemany stream)")  # fmt: skip
        print(
            f"{name:11}   this process's CPU a stored event: executemany "
            f"{cpu[f'_executemany_x{k}']:.1f} us, take_batch {cpu[f'_ingest_path_x{k}']:.1f} us"
        )
    CPU.clear()
    SERVER_CPU.clear()
    return b, o


# ---------------------------------------------------------------- events API


def build_store(path: Path, n: int) -> float:
    """A SQLite store of ``n`` events over the last 30 days, written with executemany; seconds."""
    t0 = time.perf_counter()
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{tmp}")
    now = datetime.now(UTC)
    templates = [_event_row(make_event(i, now), now) for i in range(1000)]
    step = timedelta(days=30) / n
    chunk = 10_000
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            at = (now - step * i).replace(tzinfo=None)  # SQLite keeps UTC without its zone
            rows.append(dict(templates[i % 1000], id=uuid.uuid4().hex, at=at, stored_at=at))
        _executemany(store, rows)
    with store.begin() as conn:
        conn.execute(text("ANALYZE"))
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(path)
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_controller(
    db_url: str, workdir: Path, log: Any, *args: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("STOCKADE_DB", None)
    cmd = [sys.executable, "-m", "stockade", "controller", "--host", "127.0.0.1",
           "--port", str(port), "--db", db_url, "--cert-dir", str(workdir / "tls"), *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"https://127.0.0.1:{port}"
    ca = workdir / "tls" / "ca.crt"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the controller exited ({proc.returncode}); see {log.name}")
        if ca.exists():
            try:
                httpx.get(f"{base}/healthz", verify=ssl.create_default_context(cafile=str(ca)))
                return proc, base
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"the controller did not start in 60 s; see {log.name}")


# ---------------------------------------------------------------- over HTTPS, --workers N


def _post_all(base: str, ca: str, token: str, bodies: list[bytes]) -> int:
    """One agent: its batches, one after another, on one keep-alive HTTPS connection."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ctx = ssl.create_default_context(cafile=ca)
    stored = 0
    with httpx.Client(base_url=base, verify=ctx, headers=headers, timeout=120) as client:
        for body in bodies:
            answer = client.post("/api/v1/agents/events", content=body)
            answer.raise_for_status()
            stored += answer.json()["accepted"]
    return stored


def _replicas_answering(base: str, ca: str, token: str, want: int) -> None:
    """Wait until ``want`` worker processes answer (new connections, spread by SO_REUSEPORT)."""
    ctx = ssl.create_default_context(cafile=ca)
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < want and time.monotonic() < deadline:
        try:
            answer = httpx.get(
                f"{base}/api/v1/controller",
                verify=ctx,
                headers={"Authorization": f"Bearer {token}"},
            )
            seen.add(answer.json()["replica"])
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(0.2)
    if len(seen) < want:
        sys.exit(f"only {len(seen)} of {want} controller workers answered in 60 s")


def _tree_cpu(root: int) -> float:
    """CPU seconds (user and system) of process ``root`` and its descendants (the workers)."""
    stats = _processes()
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (_, ppid, _) in stats.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(stats[pid][2] for pid in tree if pid in stats)


def bench_http(opts: argparse.Namespace) -> dict[int, list[float]]:
    """Events/s posted over HTTPS by ``--agents`` processes to ``stockade controller --workers
    N`` on PostgreSQL, for each N of ``--http-workers``, alternating, a fresh schema a round."""
    from concurrent.futures import ProcessPoolExecutor

    counts = [int(n) for n in opts.http_workers.split(",")]
    agents = max(1, opts.agents)
    at = datetime.now(UTC)
    evs = [make_event(i, at + timedelta(microseconds=i)) for i in range(opts.events)]
    per_agent: list[list[bytes]] = [[] for _ in range(agents)]
    for k, start in enumerate(range(0, len(evs), opts.batch)):
        body = _body(evs[start : start + opts.batch], agent_name=f"bench-agent-{k % agents}")
        per_agent[k % agents].append(body)
    rates: dict[int, list[float]] = {n: [] for n in counts}
    cpu: dict[int, list[float]] = {n: [] for n in counts}  # the controller's, us an event
    admin = Principal(name="bench", role="admin", via="cli")
    with tempfile.TemporaryDirectory(prefix="stockade-bench-http-") as tmp:
        for r in range(opts.rounds):
            for n in counts[r % len(counts) :] + counts[: r % len(counts)]:
                schema = f"bench_http_{os.getpid()}"
                url = _pg_schema_url(schema)
                store = open_store(url)
                _, token = create_token(store, name="bench-agent", role="agent", actor=admin)
                _, reader = create_token(store, name="bench-reader", role="reader", actor=admin)
                store.close()
                workdir = Path(tmp) / f"r{r}-w{n}"
                workdir.mkdir()
                with (workdir / "controller.log").open("wb") as log:
                    proc, base = start_controller(url, workdir, log, "--workers", str(n))
                    try:
                        ca = str(workdir / "tls" / "ca.crt")
                        _replicas_answering(base, ca, reader, n)
                        c0, t0 = _tree_cpu(proc.pid), time.perf_counter()
                        with ProcessPoolExecutor(agents) as pool:
                            jobs = [pool.submit(_post_all, base, ca, token, b) for b in per_agent]
                            done = [j.result() for j in jobs]
                        elapsed = time.perf_counter() - t0
                        time.sleep(1.0)  # what the stored events set going (the response rules)
                        cpu[n].append((_tree_cpu(proc.pid) - c0) / opts.events * 1e6)
                    finally:
                        proc.terminate()
                        proc.wait(30)
                _drop_pg_schema(schema)
                if sum(done) != opts.events:
                    sys.exit(f"stored {sum(done)} of {opts.events} events")
                rates[n].append(opts.events / elapsed)
    base_rate = statistics.median(rates[counts[0]])
    for n in counts:
        med = statistics.median(rates[n])
        print(
            f"PostgreSQL  over HTTPS, {agents} agent processes, controller --workers {n}: "
            f"{med:7.0f} events/s (min-max {min(rates[n]):.0f}-{max(rates[n]):.0f})   "
            f"ratio to --workers {counts[0]}  {med / base_rate:.2f}; the controller's CPU an "
            f"event {statistics.median(cpu[n]):.1f} us"
        )
    return rates


FILTERS: list[dict[str, str]] = [
    {},
    {"category": "firewall"},
    {"category": "dlp"},
    {"level": "high"},
    {"category": "dlp", "level": "high"},
    {"category": "tls", "level": "critical"},
    {"kind": "scan.*"},
    {"namespace": "team-7"},
    {"namespace": "team-3", "level": "medium"},
]


def bench_api(opts: argparse.Namespace) -> list[float]:
    cache = Path(opts.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"events-{opts.stored}.db"
    if path.exists():
        print(f"store: {path} (reused; remove it to rebuild)")
    else:
        took = build_store(path, opts.stored)
        print(f"store: {path} built in {took:.1f} s ({opts.stored} events, executemany)")
    url = f"sqlite:///{path}"
    store = open_store(url)
    with store.connect() as conn:
        held = conn.execute(select(func.count()).select_from(events)).scalar_one()
    admin = Principal(name="bench", role="admin", via="cli")
    _, token = create_token(
        store, name=f"bench-{uuid.uuid4().hex[:12]}", role="reader", actor=admin
    )
    store.close()
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
        work = Path(tmp)
        with (work / "controller.log").open("wb") as log:
            proc, base = start_controller(url, work, log)
            try:
                return _requests(base, work, token, held, opts)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _requests(
    base: str, work: Path, token: str, held: int, opts: argparse.Namespace
) -> list[float]:
    tls = ssl.create_default_context(cafile=str(work / "tls" / "ca.crt"))
    lat: list[float] = []
    per_filter: dict[str, list[float]] = {}
    with httpx.Client(
        base_url=base, verify=tls, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        for f in FILTERS:  # warm up: connection, the page cache over each index
            client.get("/api/v1/events", params={"limit": 100, **f}).raise_for_status()
        i = 0
        while len(lat) < opts.requests:
            f = FILTERS[i % len(FILTERS)]
            i += 1
            label = "&".join(f"{k}={v}" for k, v in f.items()) or "(none)"
            cursor = None
            for _ in range(opts.pages):
                params: dict[str, Any] = {"limit": 100, **f}
                if cursor:
                    params["cursor"] = cursor
                t0 = time.perf_counter()
                r = client.get("/api/v1/events", params=params)
                ms = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                lat.append(ms)
                per_filter.setdefault(label, []).append(ms)
                cursor = r.json()["next"]
                if not cursor or len(lat) >= opts.requests:
                    break
    print(
        f"events API: {held} stored events (SQLite), {len(lat)} requests of limit=100, "
        f"up to {opts.pages} pages a filter by cursor"
    )
    for label, ms in per_filter.items():
        ms.sort()
        print(f"  {label:32} n {len(ms):5}  p50 {_pct(ms, 50):7.1f} ms  p99 {_pct(ms, 99):7.1f} ms")
    return lat


def _pct(sorted_ms: list[float], p: int) -> float:
    return sorted_ms[max(0, -(-len(sorted_ms) * p // 100) - 1)]


# ---------------------------------------------------------------- main


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000, help="events a round")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--agents",
        type=int,
        default=1,
        help="also measure this many agents posting at once (threads; 1: single stream only)",
    )
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--stored", type=int, default=1_000_000, help="events behind the API")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pages", type=int, default=10, help="pages a filter, by cursor")
    ap.add_argument(
        "--cache-dir",
        default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stockade"),
        help="where the API's store is kept between runs",
    )
    ap.add_argument(
        "--http-workers",
        default="",
        help="also post the events over HTTPS from --agents processes to a real controller on "
        "PostgreSQL started with each of these --workers counts (e.g. 1,2)",
    )
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-api", action="store_true")
    opts = ap.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(
        f"load average {load:.1f} on {os.cpu_count()} CPUs; ingestion: {opts.events} events "
        f"a round in batches of {opts.batch}, {opts.rounds} rounds, medians"
    )
    verdicts: list[str] = []

    def verdict(text: str, ok: bool) -> None:
        verdicts.append(f"target: {text}: {'OK' if ok else 'MISSED'}")

    if not opts.skip_ingest:
        with tempfile.TemporaryDirectory(prefix="stockade-bench-") as tmp:
            store = open_store(f"sqlite:///{tmp}/ingest.db")
            try:
                b, o = bench_ingest("SQLite", store, opts)
            finally:
                store.close()
        verdict(f"SQLite ingestion >= 0.5 of executemany ({o / b:.2f})", o / b >= 0.5)
        if opts.no_pg:
            pass
        elif not _pg_reachable():
            print(f"PostgreSQL: not reachable at {PG_URL} (skipped)")
            verdict("PostgreSQL ingestion (not measured)", False)
        else:
            schema = f"bench_ingest_{os.getpid()}"
            store = open_store(_pg_schema_url(schema))
            try:
                b, o = bench_ingest("PostgreSQL", store, opts)
            finally:
                store.close()
                _drop_pg_schema(schema)
            verdict(f"PostgreSQL ingestion >= 0.5 of executemany ({o / b:.2f})", o / b >= 0.5)
            verdict(f"PostgreSQL ingestion >= 20000 events/s ({o:.0f})", o >= 20_000)
    if opts.http_workers and not opts.no_pg and _pg_reachable():
        rates = bench_http(opts)
        best = max(statistics.median(v) for v in rates.values())
        verdict(f"PostgreSQL over HTTPS >= 20000 events/s ({best:.0f})", best >= 20_000)
    if not opts.skip_api:
        lat = sorted(bench_api(opts))
        p50, p99 = _pct(lat, 50), _pct(lat, 99)
        print(f"events API overall: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
        verdict(f"events API p99 < 50 ms ({p99:.1f} ms)", p99 < 50)
    print("\n".join(verdicts))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
