"""The connection graph and workloads through a real controller (SQLite and PostgreSQL): agents'
connection records and events in, edges aggregated at three levels out, badges, filters."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from stockade.events.ingest import AgentInfo
from stockade.events.reporter import ControllerLink, Reporter
from stockade.events.spool import Spool
from stockade.firewall.enforce.inspector import Inspector
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import load_files, parse_texts
from stockade.firewall.policy.store import apply_policy, set_quarantine
from stockade.model import Event, ResourceRef
from stockade.network.connection import ConnectionRecord, Hit, events_for
from stockade.network.dlp.engine import DlpEngine
from stockade.network.interface import TlsInfo
from stockade.network.tables import connections
from tests.api.controller import AGENT, Controller
from tests.api.graphs import NOW, edge, fw_event, graph, pod, post, record
from tests.firewall.conftest import EXAMPLES
from tests.firewall.test_inspector import ACK, PSH, SYN, packet
from tests.firewall.test_policy_model import ORD, PAY


def test_connections_aggregate_into_one_edge_and_a_batch_sent_again_adds_nothing(
    controller: Controller,
) -> None:
    web, db = pod("agg", "web"), pod("agg", "db")
    recs = [
        record(web, db, port=5432, protocol="proto.postgres", sent=10),
        record(web, db, port=5432, protocol="proto.postgres", sent=20),
        record(web, db, port=6379, protocol="proto.redis", sent=30),
    ]
    first = post(controller, recs)
    again = post(controller, recs)
    assert first["connections"] == {"accepted": 3, "duplicates": 0}
    assert again["connections"] == {"accepted": 0, "duplicates": 3}
    e = edge(graph(controller, namespace="agg"), "wl:agg/web", "wl:agg/db")
    assert e["connections"] == 3 and e["clear"] == 3 and e["tls"] == 0
    assert e["bytes"] == 3 * (10 + 20 + 30)
    assert e["ports"] == ["tcp/5432", "tcp/6379"]
    assert e["protocols"] == ["proto.postgres", "proto.redis"]
    assert e["encryption"] == "clear" and e["status"] == "ok"
    assert e["first_seen"] <= e["last_seen"]
    with controller.store.connect() as conn:
        stored = conn.execute(
            select(connections.c.id).where(connections.c.client_namespace == "agg")
        ).all()
    assert len(stored) == 3


def test_encryption_is_told_apart_and_filtered(controller: Controller) -> None:
    app, api, bank = pod("enc", "app"), pod("enc", "api"), pod("enc", "bank")
    post(
        controller,
        [
            record(app, api, port=8080),
            record(app, bank, port=443, protocol="proto.tls", tls=TlsInfo(version="TLS1.3")),
            record(app, api, port=8443, protocol="proto.tls", tls=TlsInfo(version="TLS1.2")),
        ],
    )
    everything = graph(controller, namespace="enc")
    assert edge(everything, "wl:enc/app", "wl:enc/api")["encryption"] == "mixed"
    assert edge(everything, "wl:enc/app", "wl:enc/bank")["encryption"] == "tls"
    clear = graph(controller, namespace="enc", encryption="clear")
    assert [e["id"] for e in clear["edges"]] == ["wl:enc/app>wl:enc/api"]
    assert edge(clear, "wl:enc/app", "wl:enc/api")["ports"] == ["tcp/8080"]
    tls = graph(controller, namespace="enc", encryption="tls")
    assert sorted(e["id"] for e in tls["edges"]) == [
        "wl:enc/app>wl:enc/api",
        "wl:enc/app>wl:enc/bank",
    ]
    split = graph(controller, namespace="enc", split="encryption")
    by_id = {e["id"]: e for e in split["edges"]}
    assert sorted(by_id) == [
        "wl:enc/app>wl:enc/api#clear",
        "wl:enc/app>wl:enc/api#tls",
        "wl:enc/app>wl:enc/bank#tls",
    ]
    assert by_id["wl:enc/app>wl:enc/api#clear"]["ports"] == ["tcp/8080"]
    assert by_id["wl:enc/app>wl:enc/api#tls"]["ports"] == ["tcp/8443"]
    assert by_id["wl:enc/app>wl:enc/api#tls"]["encryption"] == "tls"


def test_firewall_events_set_the_status_and_dlp_events_count_by_sensor(
    controller: Controller,
) -> None:
    crm, orders, pay, web = (
        pod("st", "crm"),
        pod("st", "orders"),
        pod("st", "pay"),
        pod("st", "web"),
    )
    events = [
        fw_event("firewall.violation", crm, orders),
        fw_event("firewall.blocked", crm, pay, action="block"),
        fw_event("firewall.violation", crm, pay),
        fw_event("dlp.sensitive_in_clear", crm, orders, sensor="dlp.payment_card", count=2),
        fw_event("dlp.sensitive_in_clear", crm, orders, sensor="dlp.us_ssn"),
    ]
    answer = post(controller, [record(crm, orders), record(web, orders)], events)
    post(controller, [], events)  # sent again: counted once
    assert answer["accepted"] == 5
    doc = graph(controller, namespace="st")
    violation = edge(doc, "wl:st/crm", "wl:st/orders")
    assert violation["status"] == "violation" and violation["violations"] == 1
    assert violation["dlp"] == {"dlp.payment_card": 2, "dlp.us_ssn": 1}
    assert violation["dlp_hits"] == 3
    blocked = edge(doc, "wl:st/crm", "wl:st/pay")
    assert blocked["status"] == "blocked" and blocked["blocked"] == 1
    assert blocked["connections"] == 0  # seen by the firewall only
    assert edge(doc, "wl:st/web", "wl:st/orders")["status"] == "ok"
    only = graph(controller, namespace="st", violations=1)
    assert sorted(e["id"] for e in only["edges"]) == [
        "wl:st/crm>wl:st/orders",
        "wl:st/crm>wl:st/pay",
    ]
    assert {n["id"] for n in only["nodes"]} == {"wl:st/crm", "wl:st/orders", "wl:st/pay"}


POLICY = """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: lvl}
spec:
  groups:
    - name: lvl-cde
      selector: {namespace: lvl-shop, labels: {pci: cde}}
      mode: protect
    - name: lvl-web
      selector: {namespace: lvl-shop}
      mode: monitor
  rules: []
"""


def test_levels_badges_and_the_internet(controller: Controller) -> None:
    apply_policy(controller.store, parse_texts([("p", POLICY)]), POLICY)
    pay, orders = pod("lvl-shop", "pay", pci="cde"), pod("lvl-shop", "orders", pci="cde")
    front, crm = pod("lvl-shop", "front"), pod("lvl-mkt", "crm")
    world = ResourceRef(kind="external", name="93.184.216.34")
    partner = ResourceRef(kind="external", name="10.99.0.7")
    post(
        controller,
        [
            record(front, orders),
            record(orders, pay),
            record(crm, orders),
            record(crm, world, port=443, server_ip="93.184.216.34"),
            record(crm, partner, port=443, server_ip="10.99.0.7"),
        ],
    )
    set_quarantine(controller.store, "lvl-mkt/crm", [], "test")
    with controller.client("operator") as op:
        scan = {
            "image": "reg/crm:1",
            "counts": {"critical": 3, "high": 1},
            "images": {"lvl-mkt/crm": "reg/crm:1"},
        }
        assert op.post("/api/v1/scans/summary", json=scan).status_code == 202

    wl = {n["id"]: n for n in graph(controller, level="workload")["nodes"]}
    assert wl["wl:lvl-shop/pay"]["groups"] == ["lvl-cde", "lvl-web"]
    assert wl["wl:lvl-shop/pay"]["mode"] == "protect"
    assert wl["wl:lvl-shop/front"]["mode"] == "monitor"
    assert wl["wl:lvl-mkt/crm"]["mode"] is None
    assert wl["wl:lvl-mkt/crm"]["quarantined"] is True
    assert wl["wl:lvl-mkt/crm"]["critical"] == 3
    assert (
        wl["wl:lvl-shop/pay"]["critical"] is None and wl["wl:lvl-shop/pay"]["quarantined"] is False
    )
    assert wl["ext:93.184.216.34"]["internet"] is True

    groups = graph(controller, level="group")
    gnodes = {n["id"]: n for n in groups["nodes"]}
    assert gnodes["grp:lvl-cde"]["mode"] == "protect" and gnodes["grp:lvl-cde"]["members"] == 2
    assert gnodes["grp:lvl-web"]["members"] == 1
    assert edge(groups, "grp:lvl-web", "grp:lvl-cde")["connections"] == 1
    assert edge(groups, "grp:lvl-cde", "grp:lvl-cde")["connections"] == 1
    assert edge(groups, "ns:lvl-mkt", "grp:lvl-cde")["connections"] == 1  # crm has no group
    assert edge(groups, "ns:lvl-mkt", "internet")["ports"] == ["tcp/443"]
    assert edge(groups, "ns:lvl-mkt", "ext:10.99.0.7")["connections"] == 1

    spaces = graph(controller, level="namespace")
    snodes = {n["id"]: n for n in spaces["nodes"]}
    assert snodes["ns:lvl-shop"]["members"] == 3
    assert snodes["ns:lvl-shop"]["modes"] == {"protect": 2, "monitor": 1}
    assert snodes["ns:lvl-mkt"]["quarantined"] == 1 and snodes["ns:lvl-mkt"]["critical"] == 3
    assert edge(spaces, "ns:lvl-shop", "ns:lvl-shop")["connections"] == 2
    assert edge(spaces, "ns:lvl-mkt", "ns:lvl-shop")["connections"] == 1
    assert edge(spaces, "ns:lvl-mkt", "internet")["connections"] == 1


def test_since_leaves_out_older_hours(controller: Controller) -> None:
    a, b, c = pod("old", "a"), pod("old", "b"), pod("old", "c")
    post(controller, [record(a, b, at=NOW - timedelta(days=3)), record(a, c)])
    recent = graph(controller, namespace="old", since="24h")
    assert [e["id"] for e in recent["edges"]] == ["wl:old/a>wl:old/c"]
    week = graph(controller, namespace="old", since="7d")
    assert len(week["edges"]) == 2
    everything = graph(controller, namespace="old")["edges"]  # default: all time
    assert sorted(everything, key=lambda e: e["id"]) == sorted(week["edges"], key=lambda e: e["id"])


def test_workloads_list_and_one_workload(controller: Controller) -> None:
    api, db = pod("wk", "api", app="api"), pod("wk", "db")
    dlp = fw_event("dlp.sensitive_in_clear", api, db, sensor="dlp.payment_card")
    post(controller, [record(api, db, port=5432)], [dlp])
    with controller.client("reader") as reader:
        listing = reader.get("/api/v1/workloads", params={"namespace": "wk"}).json()
        one = reader.get("/api/v1/workloads/wk/api").json()
        missing = reader.get("/api/v1/workloads/wk/nobody")
    assert [w["id"] for w in listing] == ["wl:wk/api", "wl:wk/db"]
    assert listing[0]["labels"] == {"app": "api"} and listing[0]["address"] == "10.0.0.1"
    assert one["name"] == "api" and one["mode"] is None and one["quarantined"] is False
    assert [e["id"] for e in one["events"]] == [dlp["id"]]
    assert [e["id"] for e in one["edges"]] == ["wl:wk/api>wl:wk/db"]
    assert one["edges"][0]["dlp"] == {"dlp.payment_card": 1}
    assert missing.status_code == 404


def test_the_graph_needs_a_reader(controller: Controller) -> None:
    with controller.client() as anonymous:
        assert anonymous.get("/api/v1/graph").status_code == 401
    with controller.client("agent") as agent:
        assert agent.get("/api/v1/workloads").status_code == 403


def test_the_reporter_sends_connection_records_with_its_batches(
    controller: Controller, tmp_path: Path
) -> None:
    link = ControllerLink(url=controller.base, token=controller.tokens["agent"], ca=controller.ca)
    info = AgentInfo(name="sensor-graph", node="node-1", version="0.1.0", capabilities=("dlp",))
    recs = [record(pod("rep", "a"), pod("rep", "b"), port=9000 + i) for i in range(5)]
    with Reporter(link, info, Spool(tmp_path / "spool"), interval=0.1) as reporter:
        for r in recs:
            reporter.add_connection(r)
        reporter.add(
            Event.from_dict(fw_event("firewall.violation", pod("rep", "a"), pod("rep", "b")))
        )
    assert reporter.stats.connections == 5 and reporter.stats.accepted == 1
    assert reporter.stats.pending == 0 and reporter.stats.dropped == 0
    e = edge(graph(controller, namespace="rep"), "wl:rep/a", "wl:rep/b")
    assert e["connections"] == 5 and e["status"] == "violation"
    assert len(e["ports"]) == 6  # the five records and the violation's 8080


def test_events_only_batches_answer_as_before(controller: Controller) -> None:
    ev = fw_event("firewall.violation", pod("plain", "a"), pod("plain", "b"))
    with controller.client("agent") as agent:
        r = agent.post("/api/v1/agents/events", json={"agent": AGENT, "events": [ev]})
    assert r.json() == {"accepted": 1, "duplicates": 0}
    assert edge(graph(controller, namespace="plain"), "wl:plain/a", "wl:plain/b")["violations"] == 1


def test_answers_are_the_stores_and_stale_ones_only_when_asked_for(controller: Controller) -> None:
    """A graph answer is cached while nothing changes; after a change a plain request gets the
    new graph at once, and one with ``allow_stale`` may get the previous answer (saying its age)
    but sees the change once the background build is done."""
    a, b, c = pod("cache", "a"), pod("cache", "b"), pod("cache", "c")
    post(controller, [record(a, b, port=80, protocol="proto.http", sent=1)])
    with controller.client("reader") as client:

        def ask(**params: object) -> tuple[dict, int]:  # type: ignore[type-arg]
            r = client.get("/api/v1/graph", params={"namespace": "cache", **params})
            r.raise_for_status()
            return r.json(), int(r.headers["x-stockade-graph-age"])

        first, _ = ask(allow_stale=1)
        again, _ = ask(allow_stale=1)
        assert again == first  # unchanged store: the cached answer
        post(controller, [record(a, c, port=80, protocol="proto.http", sent=1)])
        stale, age = ask(allow_stale=1)  # may still be the previous answer, with its age
        assert age >= 0 and {e["target"] for e in stale["edges"]} <= {"wl:cache/b", "wl:cache/c"}
        fresh, _ = ask()
        assert {e["target"] for e in fresh["edges"]} == {"wl:cache/b", "wl:cache/c"}
        for _ in range(50):
            later, _ = ask(allow_stale=1)
            if len(later["edges"]) == 2:
                break
            time.sleep(0.1)
        assert {e["target"] for e in later["edges"]} == {"wl:cache/b", "wl:cache/c"}


def test_a_dlp_finding_seen_by_the_sensor_and_the_enforcer_counts_once(
    controller: Controller,
) -> None:
    """One request carrying a card, in clear, seen by both agents of the node: the enforcer's
    inspector (in the kernel's queue) and the sensor (on the wire) each report it. The edge counts
    the finding once, whichever agent reports first; the next connection's finding counts again."""
    body = b'{"card": "4111 1111 1111 1111"}'
    request = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n" % len(body)
    request += body
    payments, orders = pod(PAY.namespace, PAY.name), pod(ORD.namespace, ORD.name)

    def enforcer_events(client_port: int) -> list[dict[str, Any]]:
        seen: list[Event] = []
        inspector = Inspector(
            load_files([EXAMPLES / "policy.yaml"]),
            Directory([PAY, ORD]),
            dlp_engine=DlpEngine(),
            emit=seen.append,
        )
        inspector.packet(packet(PAY.ip, ORD.ip, client_port, 8080, SYN, 100))
        inspector.packet(packet(PAY.ip, ORD.ip, client_port, 8080, ACK | PSH, 101, request))
        found = [e for e in seen if e.kind.startswith("dlp.")]
        assert [e.data["sensor"] for e in found] == ["dlp.payment_card"]
        return [e.to_dict() for e in found]

    def sensor_events(client_port: int) -> list[dict[str, Any]]:
        stream = DlpEngine().stream()
        matches = stream.feed(request) + stream.close()
        now = time.time()  # the flow the enforcer reports now (not NOW: the module's import)
        rec = ConnectionRecord(
            id=uuid.uuid4().hex,
            start=now,
            end=now + 1,
            transport="tcp",
            ip_version=4,
            client_ip=PAY.ip,
            client_port=client_port,
            server_ip=ORD.ip,
            server_port=8080,
            client=payments,
            server=orders,
            protocol="proto.http",
            encrypted=False,
            bytes_to_server=len(request),
            bytes_to_client=0,
            packets_to_server=1,
            packets_to_client=0,
            hits=tuple(Hit(direction="client", match=m) for m in matches),
        )
        found = events_for(rec)
        assert [e.data["sensor"] for e in found] == ["dlp.payment_card"]
        return [e.to_dict() for e in found]

    def dlp_on_the_edge() -> dict[str, int]:
        doc = graph(controller, namespace=PAY.namespace)
        found: dict[str, int] = edge(
            doc, f"wl:{PAY.namespace}/{PAY.name}", f"wl:{ORD.namespace}/{ORD.name}"
        )["dlp"]
        return found

    post(controller, [], enforcer_events(41000))  # the enforcer's batch
    post(controller, [], sensor_events(41000))  # the sensor's, about the same flow
    assert dlp_on_the_edge() == {"dlp.payment_card": 1}
    # the sensor of the server's node saw the flow too
    post(controller, [], [{**e, "node": "node-2"} for e in sensor_events(41000)])
    assert dlp_on_the_edge() == {"dlp.payment_card": 1}
    post(controller, [], sensor_events(41001))  # the next connection: the sensor first
    post(controller, [], enforcer_events(41001))
    assert dlp_on_the_edge() == {"dlp.payment_card": 2}
