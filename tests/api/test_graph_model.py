"""The graph kept in memory and patched by version answers byte for byte what a build from the
store answers, after every one of a sequence of random agent batches (connections in clear and
TLS, DLP hits, firewall violations and blocks, new workloads, labels that move a workload to
another group, another replica's writes, a quarantine), on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import random
import time
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from stockade.api.graph import full_answer
from stockade.api.graphmodel import GraphModels, kept
from stockade.api.topology import Context, GraphQuery, PolicyCache
from stockade.firewall.policy.files import parse_texts
from stockade.firewall.policy.store import apply_policy, set_quarantine
from stockade.model import Event, ResourceRef, Severity
from stockade.network import received
from stockade.network.graph import graph_version
from stockade.store import Store, open_store
from stockade.store.versions import config_version

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = """apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: model}
spec:
  groups:
    - {name: a-web, selector: {namespace: a, labels: {tier: web}}, mode: protect}
    - {name: a-db, selector: {namespace: a, labels: {tier: db}}, mode: monitor}
    - {name: b-all, selector: {namespace: b}, mode: discover}
    - {name: partners, selector: {cidrs: [10.200.0.0/16]}, mode: monitor}
  rules: []
"""
EXTERNALS = ["93.184.216.34", "10.200.0.7", "8.8.8.8"]
KINDS = ("firewall.violation", "firewall.blocked", "dlp.sensitive_in_clear", "tls.required")


def _queries() -> list[GraphQuery]:
    out = []
    for level in ("workload", "group", "namespace"):
        for since in (None, NOW - timedelta(hours=3), NOW - timedelta(hours=1)):
            for split in (False, True):
                for violations in (False, True):
                    q = GraphQuery(level=level, since=since, split=split, violations=violations)
                    assert kept(q)
                    out.append(q)
                    if level == "workload":
                        for namespace in ("a", "b", "none"):
                            q = GraphQuery(
                                level=level,
                                since=since,
                                split=split,
                                violations=violations,
                                namespace=namespace,
                            )
                            assert kept(q)
                            out.append(q)
    return out


def _workload(rnd: random.Random, n: int) -> dict[str, Any]:
    i = rnd.randrange(n)
    return {
        "kind": "pod",
        "namespace": "ab"[i % 2],
        "name": f"w{i}",
        "labels": {"tier": rnd.choice(["web", "db"])},  # may change: the workload moves group
    }


def _batch(rnd: random.Random, n: int) -> tuple[list[dict[str, Any]], list[Event]]:
    docs = []
    for _ in range(rnd.randrange(1, 12)):
        client = _workload(rnd, n)
        if rnd.random() < 0.2:
            ip = rnd.choice(EXTERNALS)
            server: dict[str, Any] = {"kind": "external", "name": ip}
        else:
            server = _workload(rnd, n)
            ip = f"10.0.0.{rnd.randrange(1, 250)}"
        tls = rnd.random() < 0.3
        at = NOW - timedelta(minutes=rnd.uniform(0, 6 * 60))
        docs.append(
            {
                "id": uuid.uuid4().hex,
                "start": at.isoformat(),
                "end": (at + timedelta(seconds=1)).isoformat(),
                "transport": "tcp",
                "ip_version": 4,
                "client": {"ip": f"10.0.1.{rnd.randrange(1, 250)}", "port": 40000, **client},
                "server": {"ip": ip, "port": rnd.choice([80, 443, 5432]), **server},
                "protocol": "proto.tls" if tls else "proto.http",
                "encrypted": tls,
                "tls": {"version": "TLS1.3", "sni": "x.example"} if tls else None,
                "bytes": {"to_server": rnd.randrange(1, 1000), "to_client": 10},
                "packets": {"to_server": 1, "to_client": 1},
                "state": "closed",
                "dlp": [],
            }
        )
    events = []
    for _ in range(rnd.randrange(0, 4)):
        src, dst = _workload(rnd, n), _workload(rnd, n)
        events.append(
            Event(
                id=uuid.uuid4().hex,
                kind=rnd.choice(KINDS),
                severity=Severity.HIGH,
                source="enforcer",
                message="model",
                at=NOW - timedelta(minutes=rnd.uniform(0, 6 * 60)),
                resource=ResourceRef(kind="pod", name=src["name"], namespace=src["namespace"]),
                peer=ResourceRef(kind="pod", name=dst["name"], namespace=dst["namespace"]),
                data={
                    "port": 80,
                    "app": rnd.choice(["proto.http", "proto.tls"]),
                    "sensor": rnd.choice(["dlp.payment_card", "dlp.us_ssn"]),
                    "action": rnd.choice(["block", "alert"]),
                },
            )
        )
    return received.parse_records(docs), events


def _store_batch(store: Store, rnd: random.Random, n: int) -> None:
    rows, events = _batch(rnd, n)
    with store.begin() as conn:
        received.store_new(conn, rows, events)


def _state(store: Store) -> tuple[int, Any]:
    with store.connect() as conn:
        version = graph_version(conn)
    return version, (config_version(store), None)


def test_the_patched_graph_equals_the_graph_built_from_the_store(any_store: Store) -> None:
    store = any_store
    other = open_store(str(store.engine.url.render_as_string(hide_password=False)))  # a replica
    rnd = random.Random(14)
    policy = parse_texts([("model", POLICY)])
    apply_policy(store, policy, POLICY)
    policies, models = PolicyCache(), GraphModels()
    queries = _queries()
    try:
        for step in range(30):
            n = 6 + step  # new workloads keep arriving
            _store_batch(other if step % 3 == 2 else store, rnd, n)
            if step == 20:  # a new configuration state: the models for the old one go unused
                set_quarantine(store, "a/w2", [], "model test")
            badges = _state(store)[1]
            ctx = Context(store, policies)  # the store holds still until the next step
            for q in queries if step % 5 == 4 else rnd.sample(queries, 8):
                patched = models.answer(store, policies, q, badges=badges)
                assert patched == full_answer(store, policies, q, ctx), (step, q)
    finally:
        models.close()
        other.close()


def test_the_models_keep_up_with_the_store_between_requests(sqlite_store: Store) -> None:
    """Another replica's batch is taken in by the models' thread, before anyone asks."""
    store, rnd = sqlite_store, random.Random(5)
    models, policies = GraphModels(), PolicyCache()
    models.KEEP_UP = 0.05
    q = GraphQuery(level="namespace")
    try:
        _store_batch(store, rnd, 4)
        models.answer(store, policies, q, badges=None)
        (model,) = models._models.values()
        _store_batch(store, rnd, 8)
        version = _state(store)[0]
        deadline = time.monotonic() + 10
        while model.version != version and time.monotonic() < deadline:
            time.sleep(0.02)
        assert model.version == version
        assert models.answer(store, policies, q, badges=None) == full_answer(store, policies, q)
    finally:
        models.close()
    assert models._keeper is not None and not models._keeper.is_alive()


def test_a_later_window_is_made_from_a_wider_one_held(any_store: Store) -> None:
    """``since=24h`` moves on every hour: the new window's model is the wider one's rows from
    its hour on (not a read of the whole aggregate), and answers as a build from the store."""
    store, rnd = any_store, random.Random(9)
    models, policies = GraphModels(), PolicyCache()
    wide = GraphQuery(level="workload", since=NOW - timedelta(hours=4))
    narrow = GraphQuery(level="workload", since=NOW - timedelta(hours=2), split=True)
    try:
        for _ in range(3):
            _store_batch(store, rnd, 8)
        models.answer(store, policies, wide, badges=None)
        _store_batch(store, rnd, 8)
        assert models.answer(store, policies, narrow, badges=None) == full_answer(
            store, policies, narrow
        )
        assert len(models._models) == 2
        assert models.answer(store, policies, wide, badges=None) == full_answer(
            store, policies, wide
        )
    finally:
        models.close()


def test_a_model_dropped_is_freed_without_the_garbage_collector(sqlite_store: Store) -> None:
    """Models are moved out of the collector's sight once made (gc.freeze): nothing in one may
    be in a reference cycle, or every model dropped would stay in memory."""
    store = sqlite_store
    _store_batch(store, random.Random(3), 6)
    models, policies = GraphModels(), PolicyCache()
    for level in ("workload", "group", "namespace"):
        models.answer(store, policies, GraphQuery(level=level), badges=None)
    models.close()
    (held,) = models._models.values()
    gone = weakref.ref(held)
    del held
    gc.disable()
    try:
        models._models.clear()
        assert gone() is None
    finally:
        gc.enable()


def test_an_edge_with_a_dlp_hit_is_clear_before_its_connections_are_counted() -> None:
    """A DLP hit is bytes seen in clear: the edge says so even while the sensor's connection
    records have not been counted yet (what the console's map showed as "unknown")."""
    from stockade.api.topology import _Agg

    assert _Agg().doc("a", "b")["encryption"] == "unknown"
    assert _Agg(dlp={"dlp.payment_card": 1}).doc("a", "b")["encryption"] == "clear"
    assert _Agg(tls=2, connections=2).doc("a", "b")["encryption"] == "tls"
    assert _Agg(tls=2, connections=2, dlp={"dlp.payment_card": 1}).doc("a", "b")["encryption"] == (
        "mixed"
    )
