"""Connection records, firewall events and graph reads for the graph API's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from stockade.model import Event, ResourceRef, Severity
from stockade.network.connection import ConnectionRecord
from stockade.network.interface import TlsInfo
from tests.api.controller import AGENT, Controller

NOW = datetime.now(UTC).replace(microsecond=0)


def pod(ns: str, name: str, **labels: str) -> ResourceRef:
    return ResourceRef(kind="pod", name=name, namespace=ns, labels=tuple(sorted(labels.items())))


def record(
    client: ResourceRef,
    server: ResourceRef,
    *,
    port: int = 8080,
    protocol: str = "proto.http",
    tls: TlsInfo | None = None,
    sent: int = 100,
    client_ip: str = "10.0.0.1",
    server_ip: str = "10.0.0.2",
    at: datetime = NOW,
) -> dict[str, Any]:
    return ConnectionRecord(
        id=uuid.uuid4().hex,
        start=at.timestamp(),
        end=at.timestamp() + 1,
        transport="tcp",
        ip_version=4,
        client_ip=client_ip,
        client_port=40000,
        server_ip=server_ip,
        server_port=port,
        client=client,
        server=server,
        protocol=protocol,
        encrypted=tls is not None,
        tls=tls,
        bytes_to_server=sent,
        bytes_to_client=2 * sent,
        packets_to_server=3,
        packets_to_client=3,
    ).to_dict()


def fw_event(
    kind: str, src: ResourceRef, dst: ResourceRef, *, port: int = 8080, **data: Any
) -> dict[str, Any]:
    return Event(
        id=uuid.uuid4().hex,
        kind=kind,
        severity=Severity.HIGH,
        source="enforcer",
        message=f"{kind} {src.name} -> {dst.name}",
        resource=src,
        peer=dst,
        at=NOW,
        data={"port": port, "l4": "tcp", "app": "proto.http", **data},
    ).to_dict()


def post(
    c: Controller, records: list[dict[str, Any]], events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    with c.client("agent") as agent:
        r = agent.post(
            "/api/v1/agents/events",
            json={"agent": AGENT, "events": events or [], "connections": records},
        )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def graph(c: Controller, **params: Any) -> dict[str, Any]:
    with c.client("reader") as reader:
        r = reader.get("/api/v1/graph", params=params)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def edge(doc: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    found = [e for e in doc["edges"] if e["id"] == f"{source}>{target}"]
    assert len(found) == 1, [e["id"] for e in doc["edges"]]
    return found[0]
