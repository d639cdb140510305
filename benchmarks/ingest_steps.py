"""Where ``take_batch`` spends this process's CPU, a stored event, on PostgreSQL: CPU timers
(thread time) around each step of the path, over the events of ``benchmarks/ingest.py`` (the same
mix, 20,000 events in batches of 500, an emptied table each round), medians of the rounds.

    PYTHONPATH=<tree>/src python3 benchmarks/ingest_steps.py [--rounds 3] [--events 20000]
                                                            [--batch 500] [--profile]

Unlike ``benchmarks/ingest.py`` it imports ``stockade`` from ``PYTHONPATH``, so the same script
measures another tree (a ``git archive`` of a starting commit) for a before/after breakdown. The
timers wrap module functions by name (those a tree lacks are left out) and cost a little
themselves, so the steps add up to a little more than the whole. ``--profile``: one round
under cProfile (thread time), the functions by their own time instead. PostgreSQL is
STOCKADE_TEST_PG, in a schema of this process's own (dropped after).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, delete, text

import stockade
from stockade.api import agents
from stockade.model import Event, ResourceRef, Severity
from stockade.network import graph, received
from stockade.store import open_store, records
from stockade.store.db import normalize_url
from stockade.store.tables import events

PG_URL = os.environ.get(
    "STOCKADE_TEST_PG", "postgresql://stockade:stockade@127.0.0.1:5432/stockade_test"
)
# benchmarks/ingest.py's mix (kept here: importing it would import its own tree's stockade)
KINDS = [("dlp.sensitive_in_clear", 20), ("firewall.denied", 30), ("firewall.allowed", 20),
         ("tls.weak_version", 8), ("process.unexpected", 10), ("audit.token_created", 4),
         ("scan.critical_vulnerability", 8)]  # fmt: skip
LEVELS = [(Severity.NEGLIGIBLE, 30), (Severity.LOW, 30), (Severity.MEDIUM, 25),
          (Severity.HIGH, 13), (Severity.CRITICAL, 2)]  # fmt: skip
NAMESPACES = [f"team-{i}" for i in range(20)]
# (module, function, label): the steps, in the order they run
STEPS = [
    (agents, "parse_batch", "parse_batch: decoding, the envelope's checks, the Events"),
    (records, "insert_new_rows", "the events' rows through the gate, COPY"),
    (records, "insert_new_copy_rows", "the events' rows through the gate, COPY"),
    (received, "store_new", "the graph (received.store_new)"),
    (graph.Delta, "add_event", "  of it: the batch's delta (Delta.add_event)"),
    (graph, "_raise_version", "  of it: the version"),
    (graph, "_apply_nodes", "  of it: nodes"),
    (graph, "_apply_edges", "  of it: edges"),
    (agents, "heartbeat_in", "the heartbeat"),
]


def _cycle(pairs: list[tuple[Any, int]]) -> list[Any]:
    return [v for v, w in pairs for _ in range(w)]


def make_event(i: int, at: datetime) -> Event:
    kinds, levels = _cycle(KINDS), _cycle(LEVELS)
    kind = kinds[(i * 7) % len(kinds)]
    return Event(
        kind=kind,
        message=f"{kind} from pod web-{i % 500} to 10.1.{i % 250}.{i % 200}:443",
        severity=levels[(i * 13) % len(levels)],
        source="sensor",
        resource=ResourceRef(kind="pod", name=f"web-{i % 500}", namespace=NAMESPACES[i % 20]),
        peer=ResourceRef(kind="pod", name=f"db-{i % 50}", namespace="data"),
        data={"bytes": 512 + i % 4096, "port": 443, "sample": "4111 11** **** 1111", "seq": i},
        at=at,
        node=f"node-{i % 3}",
        action="alert",
        mode="monitor",
    )


def body(batch: list[Event]) -> bytes:
    agent = {"name": "bench-agent", "node": "node-0", "version": "1.0", "capabilities": ["dlp"]}
    doc = {"agent": agent, "events": [e.to_dict() for e in batch]}
    return json.dumps(doc, separators=(",", ":")).encode()


SPENT: dict[str, float] = defaultdict(float)


def _timed(owner: Any, name: str, label: str) -> None:
    inner: Callable[..., Any] | None = getattr(owner, name, None)
    if inner is None:
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[label] += time.thread_time() - t0

    setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--profile", action="store_true")
    o = ap.parse_args()
    print(f"stockade from {os.path.dirname(stockade.__file__)}; load {os.getloadavg()[0]:.1f}")
    now = datetime.now(UTC)
    evs = [make_event(i, now - timedelta(milliseconds=i)) for i in range(o.events)]
    bodies = [body(evs[i : i + o.batch]) for i in range(0, len(evs), o.batch)]
    schema = f"bench_steps_{os.getpid()}"
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    store = open_store(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    take = agents.take_batch
    try:
        for b in bodies[:4]:  # warm up: connections, statement caches, the gate's caches
            take(store, b, token_name="bench")
        if not o.profile:
            for owner, name, label in STEPS:
                _timed(owner, name, label)
        per: dict[str, list[float]] = defaultdict(list)
        for _ in range(1 if o.profile else o.rounds):
            with store.begin() as conn:
                conn.execute(delete(events))
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE events"))
            SPENT.clear()
            profile = cProfile.Profile(time.thread_time) if o.profile else None
            t0 = time.thread_time()
            if profile is not None:
                profile.enable()
            for b in bodies:
                taken = take(store, b, token_name="bench")
                assert taken.stored.accepted == len(taken.batch.events)
            if profile is not None:
                profile.disable()
            per["take_batch, the whole"].append((time.thread_time() - t0) / o.events * 1e6)
            for label, spent in SPENT.items():
                per[label].append(spent / o.events * 1e6)
            if profile is not None:
                pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        labels = ["take_batch, the whole", *dict.fromkeys(label for _, _, label in STEPS)]
        for label in labels:
            if label in per:
                runs = ", ".join(f"{x:.1f}" for x in per[label])
                print(f"{label:58} {statistics.median(per[label]):6.1f} us  ({runs})")
    finally:
        store.close()
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


if __name__ == "__main__":
    main()
