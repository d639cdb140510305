"""The controller's events API against a real server: ingestion, pages, filters, live stream,
agents, metrics, OpenAPI."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from stockade.admission.limits import Limits
from stockade.model import ResourceRef, Severity
from stockade.store.records import list_events
from tests.api.controller import AGENT, Controller, batch, event, running_controller


def test_openapi_is_served(controller: Controller) -> None:
    with controller.client() as c:
        doc = c.get("/api/openapi.json").json()
    assert "/api/v1/events" in doc["paths"] and "/api/v1/agents/events" in doc["paths"]


def test_the_same_batch_twice_is_stored_once(controller: Controller) -> None:
    events = [event(i, kind="scan.completed", message=f"idem {i}") for i in range(20)]
    with controller.client("agent") as c:
        first = c.post("/api/v1/agents/events", json=batch(events))
        again = c.post("/api/v1/agents/events", json=batch(events + events[:5]))
    assert first.status_code == 200 and first.json() == {"accepted": 20, "duplicates": 0}
    assert again.json() == {"accepted": 0, "duplicates": 25}
    stored = [
        e
        for e in list_events(controller.store, kind="scan.completed")
        if e.message.startswith("idem")
    ]
    assert sorted(e.id for e in stored) == sorted(e["id"] for e in events)


def test_pages_are_stable_while_events_arrive(controller: Controller) -> None:
    base = datetime(2023, 1, 1, tzinfo=UTC)
    events = [
        event(i, kind="tls.weak_version", at=base + timedelta(seconds=i // 4)) for i in range(30)
    ]
    with controller.client("agent") as agent:
        agent.post("/api/v1/agents/events", json=batch(events)).raise_for_status()
    seen: list[str] = []
    with controller.client("reader") as c:
        params = {"kind": "tls.*", "until": "2023-01-02T00:00:00+00:00", "limit": 7}
        page = c.get("/api/v1/events", params=params).json()
        seen += [e["id"] for e in page["events"]]
        later = [
            event(100 + i, kind="tls.weak_version", at=base + timedelta(seconds=50))
            for i in range(5)
        ]
        with controller.client("agent") as agent:
            agent.post("/api/v1/agents/events", json=batch(later)).raise_for_status()
        while page["next"]:
            page = c.get("/api/v1/events", params={**params, "cursor": page["next"]}).json()
            seen += [e["id"] for e in page["events"]]
    everything = sorted(events + later, key=lambda e: (e["at"], e["id"]), reverse=True)
    # the page boundary was fixed before the later (newer) events came: none of them is seen
    assert seen == [e["id"] for e in everything if e["id"] in {x["id"] for x in events}]
    assert len(seen) == len(set(seen)) == 30


def test_filters(controller: Controller) -> None:
    ns = ResourceRef(kind="pod", name="pay", namespace="filter-ns")
    events = [
        event(1, kind="firewall.violation", severity=Severity.LOW, resource=ns),
        event(2, kind="firewall.block", severity=Severity.HIGH, resource=ns),
        event(3, kind="firewall.block", severity=Severity.CRITICAL),
    ]
    with controller.client("agent") as agent:
        agent.post("/api/v1/agents/events", json=batch(events)).raise_for_status()
    with controller.client("reader") as c:

        def ids(**params: str) -> set[str]:
            answer = c.get("/api/v1/events", params={"since": "1h", **params})
            assert answer.status_code == 200, answer.text
            return {e["id"] for e in answer.json()["events"]}

        mine = {e["id"] for e in events}
        assert ids(category="firewall") & mine == mine
        assert ids(kind="firewall.block") & mine == {events[1]["id"], events[2]["id"]}
        assert ids(level="high") & mine == {events[1]["id"], events[2]["id"]}
        assert ids(namespace="filter-ns") == {events[0]["id"], events[1]["id"]}
        assert c.get("/api/v1/events", params={"level": "dire"}).status_code == 400
        assert c.get("/api/v1/events", params={"cursor": "bm9wZQ"}).status_code == 400


def test_live_stream_delivers_an_event_ingested_after_connecting(controller: Controller) -> None:
    got: queue.Queue[object] = queue.Queue()
    connected = threading.Event()

    def listen() -> None:
        try:
            with (
                controller.client("reader") as c,
                c.stream("GET", "/api/v1/events/stream", params={"kind": "quarantine.*"}) as r,
            ):
                assert r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    connected.set()
                    if line.startswith("data: "):
                        got.put(json.loads(line[6:]))
                        return
        except Exception as exc:  # surfaced by the main thread
            got.put(exc)
            connected.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(15)
    other = event(0, kind="scan.completed")
    wanted = event(1, kind="quarantine.applied", message="pod cut off")
    with controller.client("agent") as agent:
        agent.post("/api/v1/agents/events", json=batch([other, wanted])).raise_for_status()
    received = got.get(timeout=15)
    assert isinstance(received, dict), received
    assert received["id"] == wanted["id"] and received["message"] == "pod cut off"
    thread.join(5)


def test_sigterm_stops_a_controller_while_a_live_stream_is_open(tmp_path_factory: Any) -> None:
    """A console's live stream never ends by itself: the graceful shutdown is bounded
    (``Limits.shutdown_grace``), so SIGTERM stops the controller within seconds (it waited for
    the stream, that is until the caller's kill)."""
    controllers = running_controller("sqlite", tmp_path_factory, "unused")
    controller = next(controllers)
    try:
        connected = threading.Event()

        def listen() -> None:
            try:
                with (
                    controller.client("reader") as c,
                    c.stream("GET", "/api/v1/events/stream") as r,
                ):
                    for _ in r.iter_lines():
                        connected.set()
            except httpx.HTTPError:  # the server went away: what this test does to it
                return

        threading.Thread(target=listen, daemon=True).start()
        assert connected.wait(15)
        assert controller.proc is not None
        started = time.monotonic()
        controller.proc.send_signal(signal.SIGTERM)
        controller.proc.wait(timeout=Limits().shutdown_grace + 10)
        assert time.monotonic() - started < Limits().shutdown_grace + 10
    finally:
        next(controllers, None)


def test_agents_are_listed_with_their_heartbeat(controller: Controller) -> None:
    other = {**AGENT, "name": "node-2-enforcer", "node": "node-2", "capabilities": ["firewall"]}
    with controller.client("agent") as agent:
        assert agent.post("/api/v1/agents/events", json=batch([], other)).json() == {
            "accepted": 0,
            "duplicates": 0,
        }
    with controller.client("reader") as c:
        agents = {a["name"]: a for a in c.get("/api/v1/agents").json()}
    seen = agents["node-2-enforcer"]
    assert seen["node"] == "node-2" and seen["capabilities"] == ["firewall"] and seen["up"]
    assert seen["version"] == "0.1.0" and seen["token"] == "t-agent"


def test_metrics(controller: Controller) -> None:
    with controller.client("agent") as agent:
        agent.post(
            "/api/v1/agents/events",
            json=batch([event(0, kind="cis.run", severity=Severity.MEDIUM)]),
        ).raise_for_status()
    with controller.client("reader") as c:
        answer = c.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert 'stockade_events{category="cis",level="medium"} 1' in text
    assert "stockade_agents_up " in text and "stockade_agents_known " in text


def test_token_changes_through_the_api_are_audited(controller: Controller) -> None:
    with controller.client("admin") as c:
        made = c.post("/api/v1/tokens", json={"name": "ci-bot", "role": "reader"})
        assert made.status_code == 201
        token = made.json()
        revoked = c.delete(f"/api/v1/tokens/{token['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        audit = c.get("/api/v1/events", params={"category": "audit", "since": "1h"}).json()
    with httpx.Client(base_url=controller.base, verify=controller.tls()) as anon:
        gone = anon.get("/api/v1/events", headers={"Authorization": f"Bearer {token['token']}"})
    assert gone.status_code == 401
    kinds = {(e["kind"], e["data"]["who"]) for e in audit["events"]}
    assert ("audit.token_created", "token:t-admin") in kinds
    revoke = next(e for e in audit["events"] if e["kind"] == "audit.token_revoked")
    assert revoke["data"]["before"]["revoked_at"] is None and revoke["data"]["after"]["revoked_at"]


def test_password_login_gives_a_session(controller: Controller) -> None:
    from tests.api.controller import PASSWORD

    with controller.client() as c:
        assert c.get("/api/v1/whoami").status_code == 401
        answer = c.post("/api/v1/login", json={"name": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert c.get("/api/v1/whoami").json() == {
            "name": "alice",
            "role": "admin",
            "via": "session",
        }
        assert c.post("/api/v1/logout").status_code == 200
        assert c.get("/api/v1/whoami").status_code == 401


def _gauge(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[-1])


def test_metrics_of_the_platform(controller: Controller) -> None:
    """Quarantined workloads, events agents dropped, vulnerable workloads by severity, CIS results
    and dead letters, read from the store at scrape time."""
    with controller.client("reader") as c:
        before = c.get("/metrics").text
    with controller.client("agent") as agent:
        agent.post(
            "/api/v1/agents/events",
            json=batch([event(0, kind="agent.dropped", data={"dropped": 7, "agent": "n1"})]),
        ).raise_for_status()
    with controller.client("operator") as op:
        op.post("/api/v1/quarantine/metrics-ns/metrics-pod", json={"reason": "test"})
    with controller.client("reader") as c:
        after = c.get("/metrics").text
    assert _gauge(after, "stockade_agent_events_dropped_total") == (
        _gauge(before, "stockade_agent_events_dropped_total") + 7
    )
    assert _gauge(after, "stockade_quarantined_workloads") == (
        _gauge(before, "stockade_quarantined_workloads") + 1
    )
    assert 'stockade_vulnerable_workloads{severity="critical"}' in after
    assert "stockade_notification_dead_letters " in after
    with controller.client("operator") as op:
        op.delete("/api/v1/quarantine/metrics-ns/metrics-pod")
