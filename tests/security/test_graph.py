"""The connection graph against hostile agents: a card number planted in an SNI, a workload name
or a label never comes out, nor is stored, in clear; a malformed connection record is a one-line
400 and nothing of its batch is stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from stockade.network.interface import TlsInfo
from stockade.network.tables import connections, graph_nodes
from tests.api.controller import AGENT, Controller, running_controller
from tests.api.graphs import fw_event, graph, pod, post, record


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    yield from running_controller(request.param, tmp_path_factory, "stockade_graph_security")


CARD = "4111 1111 1111 1111"


def test_a_card_in_an_sni_or_a_label_comes_out_masked(controller: Controller) -> None:
    leaky = pod("mask", "shop", note=f"card {CARD}")
    named = pod("mask", f"pod-{CARD.replace(' ', '')}")
    tls = TlsInfo(version="TLS1.2", sni=f"{CARD.replace(' ', '')}.example")
    post(controller, [record(leaky, named, port=443, protocol="proto.tls", tls=tls)])
    with controller.client("reader") as reader:
        texts = [
            reader.get("/api/v1/graph", params={"namespace": "mask"}).text,
            reader.get("/api/v1/graph", params={"level": "namespace"}).text,
            reader.get("/api/v1/workloads", params={"namespace": "mask"}).text,
            reader.get("/api/v1/workloads/mask/shop").text,
        ]
    for text in texts:
        assert "4111111111111111" not in text and CARD not in text
    assert "card 4111 **** **** 1111" in texts[2]
    with controller.store.connect() as conn:
        stored = conn.execute(
            select(connections.c.sni, connections.c.server_name, connections.c.data).where(
                connections.c.client_namespace == "mask"
            )
        ).one()
        nodes = conn.execute(
            select(graph_nodes.c.id, graph_nodes.c.labels).where(graph_nodes.c.namespace == "mask")
        ).all()
    flat = repr(stored) + repr(nodes)
    assert "4111111111111111" not in flat and CARD not in flat
    assert "1111" in str(stored.sni)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"level": "pods"}, "level"),
        ({"since": "last tuesday"}, "bad time"),
        ({"encryption": "maybe"}, "encryption"),
    ],
)
def test_bad_graph_queries_are_400(
    controller: Controller, params: dict[str, str], detail: str
) -> None:
    with controller.client("reader") as reader:
        r = reader.get("/api/v1/graph", params=params)
    assert r.status_code == 400 and detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"id": "../../etc"}, "connections[0] id"),
        ({"client": {"ip": "not-an-ip", "port": 1, "kind": "pod", "name": "x"}}, "client.ip"),
        ({"bytes": {"to_server": -1, "to_client": 0}}, "to_server"),
        ({"encrypted": "yes"}, "encrypted"),
        ({"start": "2026-01-01T00:00:00"}, "no zone"),
    ],
)
def test_a_bad_connection_record_is_400_and_nothing_of_the_batch_is_stored(
    controller: Controller, change: dict[str, Any], detail: str
) -> None:
    good = record(pod("bad", "a"), pod("bad", "b"))
    bad = {**record(pod("bad", "c"), pod("bad", "d")), **change}
    ev = fw_event("firewall.violation", pod("bad", "a"), pod("bad", "b"))
    with controller.client("agent") as agent:
        r = agent.post(
            "/api/v1/agents/events",
            json={"agent": AGENT, "events": [ev], "connections": [bad, good]},
        )
    assert r.status_code == 400 and detail in r.json()["detail"], r.text
    assert "\n" not in r.json()["detail"]
    assert graph(controller, namespace="bad")["edges"] == []
