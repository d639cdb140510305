"""Packet captures through the controller's API (a real controller on SQLite and PostgreSQL): roles,
hostile requests, the agent's side (pending by version, claim, upload), the controller masking an
upload again in memory before it keeps it, and the response rules' ``capture`` action."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.api.controller import Controller, batch, card_in_clear_from_crm
from tests.api.responding import wait_for
from tests.network import frames as fr

CARD = "4111 1111 1111 1111"
WANT = {"namespace": "marketing", "name": "crm", "duration": 5, "max_bytes": 100_000}


def _request(controller: Controller, **over: Any) -> dict[str, Any]:
    with controller.client("operator") as c:
        r = c.post("/api/v1/captures", json={**WANT, **over})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _card_pcap() -> bytes:
    """A capture an agent that did NOT mask would send: an HTTP request with a card in clear."""
    body = f'{{"card": "{CARD}"}}'.encode()
    request = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    frames = []
    t = 1700000000.0
    for frm_client, seq, ack, flags, payload in (
        (True, 1000, 0, fr.SYN, b""),
        (False, 5000, 1001, fr.SYN | fr.ACK, b""),
        (True, 1001, 5001, fr.ACK, b""),
        (True, 1001, 5001, fr.ACK | fr.PSH, request),
        (True, 1001 + len(request), 5001, fr.ACK | fr.FIN, b""),
    ):
        t += 0.001
        src, dst = ("10.77.0.2", "10.77.0.11") if frm_client else ("10.77.0.11", "10.77.0.2")
        sport, dport = (40000, 8080) if frm_client else (8080, 40000)
        l4 = fr.tcp(sport, dport, seq, ack, flags, payload)
        frames.append((t, fr.ether(fr.ipv4(src, dst, 6, l4))))
    return fr.pcap(frames)


def test_roles(controller: Controller) -> None:
    with controller.client() as c:
        assert c.post("/api/v1/captures", json=WANT).status_code == 401
        assert c.get("/api/v1/captures").status_code == 401
    for role in ("reader", "agent"):
        with controller.client(role) as c:
            assert c.post("/api/v1/captures", json=WANT).status_code == 403
    made = _request(controller)
    with controller.client("reader") as c:
        assert c.get("/api/v1/captures").status_code == 200
        assert c.get(f"/api/v1/captures/{made['id']}").json()["state"] == "requested"
        assert c.get(f"/api/v1/captures/{made['id']}/pcap").status_code == 403
        assert c.get("/api/v1/agents/captures").status_code == 403
    with controller.client("operator") as c:
        assert c.get("/api/v1/agents/captures").status_code == 403
        assert c.put(f"/api/v1/agents/captures/{made['id']}", content=b"x").status_code == 403
        # not captured yet: nothing to download
        assert c.get(f"/api/v1/captures/{made['id']}/pcap").status_code == 409


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"filter": "tcp port eighty"}, "bad capture filter"),
        ({"filter": "tcp and ("}, "bad capture filter"),
        ({"filter": "tcp\nport 80"}, "printable"),
        ({"duration": 86400}, "duration"),
        ({"duration": 0}, "duration"),
        ({"duration": "30s"}, "duration"),
        ({"max_bytes": 10**12}, "max_bytes"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"name": "../../etc"}, "name"),
        ({"namespace": "A" * 300}, "namespace"),
        ({"interface": "eth0"}, "interface"),
    ],
)
def test_hostile_requests_get_one_line_400(
    controller: Controller, change: dict[str, Any], says: str
) -> None:
    with controller.client("operator") as c:
        r = c.post("/api/v1/captures", json={**WANT, **change})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert says in detail and "\n" not in detail and "Traceback" not in detail


def test_unknown_ids_are_404(controller: Controller) -> None:
    unknown = "0" * 32
    with controller.client("operator") as c:
        for path in (unknown, f"{unknown}/pcap", "not-an-id", "x" * 5000):
            assert c.get(f"/api/v1/captures/{path}").status_code == 404, path
    with controller.client("agent") as c:
        assert c.put(f"/api/v1/agents/captures/{unknown}", content=b"x").status_code == 404
        r = c.post(f"/api/v1/agents/captures/{unknown}/state", json={"state": "running"})
        assert r.status_code == 404


def test_an_agent_takes_a_request_and_its_upload_is_masked_again(
    controller: Controller, tmp_path: Path
) -> None:
    made = _request(controller, filter="tcp port 8080")
    with controller.client("agent") as c:
        first = c.get("/api/v1/agents/captures").json()
        assert made["id"] in [x["id"] for x in first["captures"]]
        assert c.get("/api/v1/agents/captures", params={"since": first["version"]}).json() == {
            "version": first["version"],
            "unchanged": True,
        }
        assert c.get("/api/v1/agents/captures", params={"since": "x"}).status_code == 400
        state = f"/api/v1/agents/captures/{made['id']}/state"
        assert c.post(state, json={"state": "running"}).json()["state"] == "running"
        assert c.post(state, json={"state": "running"}).status_code == 409  # taken already
        assert made["id"] not in [
            x["id"] for x in c.get("/api/v1/agents/captures").json()["captures"]
        ]
        # an agent that did not mask: the controller masks in memory before it keeps anything
        r = c.put(
            f"/api/v1/agents/captures/{made['id']}",
            content=_card_pcap(),
            params={"masked": 0, "packets": 5, "stopped": "duration"},
            headers={"Content-Type": "application/vnd.tcpdump.pcap"},
        )
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["state"] == "done" and done["masked"] >= 1 and done["packets"] == 5
        assert done["report"]["masked_by_controller"] >= 1
        assert c.put(f"/api/v1/agents/captures/{made['id']}", content=b"x").status_code == 409
    with controller.client("operator") as c:
        r = c.get(f"/api/v1/captures/{made['id']}/pcap")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
        listed = {x["id"]: x for x in c.get("/api/v1/captures").json()}
        audit = c.get("/api/v1/events", params={"kind": "audit.capture_*"}).json()["events"]
        completed = c.get("/api/v1/events", params={"kind": "capture.completed"}).json()
    assert listed[made["id"]]["size"] == len(r.content) and listed[made["id"]]["masked"] >= 1
    data = r.content
    assert CARD.encode() not in data and CARD.replace(" ", "").encode() not in data
    assert b"4111 **** **** 1111" in data
    assert {e["kind"] for e in audit} >= {"audit.capture_requested", "audit.capture_downloaded"}
    assert made["id"] in [e["data"]["capture"] for e in completed["events"]]
    if shutil.which("tshark"):
        out = tmp_path / "got.pcap"
        out.write_bytes(data)
        listing = subprocess.run(
            ["tshark", "-n", "-r", str(out)], capture_output=True, text=True, timeout=60
        )
        assert listing.returncode == 0 and "POST /pay" in listing.stdout, listing.stderr


def test_an_upload_that_is_not_a_capture_fails_the_request(controller: Controller) -> None:
    made = _request(controller)
    with controller.client("agent") as c:
        c.post(f"/api/v1/agents/captures/{made['id']}/state", json={"state": "running"})
        r = c.put(f"/api/v1/agents/captures/{made['id']}", content=b"GIF89a not a pcap")
        assert r.status_code == 400 and "pcap" in r.json()["detail"]
    with controller.client("reader") as c:
        row = c.get(f"/api/v1/captures/{made['id']}").json()
    assert row["state"] == "failed" and "not a capture" in row["error"]


def test_a_failing_agent_says_why_masked(controller: Controller) -> None:
    made = _request(controller)
    with controller.client("agent") as c:
        state = f"/api/v1/agents/captures/{made['id']}/state"
        assert c.post(state, json={"state": "failed", "error": "x"}).status_code == 409
        c.post(state, json={"state": "running"})
        r = c.post(state, json={"state": "failed", "error": f"no root near {CARD}"})
        assert r.status_code == 200 and r.json()["state"] == "failed"
        assert CARD not in r.text


CAPTURE_RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: captures}
spec:
  rules:
    - name: capture-card-leaks
      mode: active
      cooldown: 1h
      match: {events: [dlp.sensitive_in_clear], namespaces: [marketing]}
      actions: [capture]
      capture: {duration: 20s, maxBytes: 200000, filter: "tcp port 8080"}
"""


def test_a_rule_asks_for_a_capture_of_the_event_workload(controller: Controller) -> None:
    with controller.client("operator") as c:
        bad = CAPTURE_RULES.replace("tcp port 8080", "tcp port eighty")
        r = c.put("/api/v1/response-rules", content=bad)
        assert r.status_code == 400 and "capture.filter" in r.json()["detail"]
        r = c.put("/api/v1/response-rules", content=CAPTURE_RULES.replace("20s", "2h"))
        assert r.status_code == 400 and "longer than" in r.json()["detail"]
        assert c.put("/api/v1/response-rules", content=CAPTURE_RULES).status_code == 200
    try:
        with controller.client("agent") as c:
            for _ in range(2):  # the second is within the cooldown
                event = card_in_clear_from_crm().to_dict()
                assert c.post("/api/v1/agents/events", json=batch([event])).status_code == 200

        def by_rule() -> list[dict[str, Any]]:
            with controller.client("reader") as c:
                rows = c.get("/api/v1/captures").json()
            return [x for x in rows if x["requested_by"] == "rule:capture-card-leaks"]

        [row] = wait_for(by_rule, what="a capture requested by the rule")
        assert row["workload"] == "marketing/crm" and row["filter"] == "tcp port 8080"
        assert row["duration"] == 20 and row["max_bytes"] == 200000
    finally:
        with controller.client("operator") as c:
            c.put("/api/v1/response-rules", content=CAPTURE_RULES.replace("active", "monitor"))


def _link(controller: Controller) -> Any:
    from stockade.events.reporter import ControllerLink

    return ControllerLink(url=controller.base, token=controller.tokens["agent"], ca=controller.ca)


def test_the_node_agent_takes_its_workloads_requests_once_and_uploads_them(
    controller: Controller, tmp_path: Path
) -> None:
    """``CaptureAgent`` against the real controller; the live capture (root) is replaced at its
    seam by one that masks a recorded capture into the file it is given."""
    from stockade.model import UsageError
    from stockade.network.capture_agent import CaptureAgent
    from stockade.network.forensics import mask_pcap

    recorded = tmp_path / "recorded.pcap"
    recorded.write_bytes(_card_pcap())
    calls: list[dict[str, Any]] = []

    def capture(interfaces: list[str], **kw: Any) -> Any:
        calls.append({"interfaces": interfaces, **kw})
        if kw["namespace"] == "no-root":
            raise UsageError("live capture needs root")
        return mask_pcap(recorded, kw["out_path"], bpf_filter=kw["bpf_filter"])

    ours = _request(controller, filter="tcp port 8080")
    elsewhere = _request(controller, namespace="other-node")
    nodes = {"marketing/crm": (["vh-crm"], "node-ns")}
    with controller.client("reader") as c:

        def state(ident: str) -> str:
            return str(c.get(f"/api/v1/captures/{ident}").json()["state"])

        one = CaptureAgent(_link(controller), nodes.get, capture=capture)
        two = CaptureAgent(_link(controller), nodes.get, capture=capture)
        try:
            one.poll_once()
            two.poll_once()  # the same node's second agent: the request is taken already
            wait_for(lambda: state(ours["id"]) == "done", what="the upload")
        finally:
            one.close()
            two.close()
        row = c.get(f"/api/v1/captures/{ours['id']}").json()
        assert state(elsewhere["id"]) == "requested"  # not a workload of this node
    mine = [x for x in calls if x["out_path"].name == f"{ours['id']}.pcap"]
    assert len(mine) == 1  # the module's other pending requests were taken too, once each
    first = mine[0]
    assert first["interfaces"] == ["vh-crm"] and first["namespace"] == "node-ns"
    assert first["duration"] == 5 and first["bpf_filter"] == "tcp port 8080"
    assert not first["out_path"].exists()  # the agent's copy is deleted after the upload
    assert row["report"]["masked_by_agent"] >= 1 and row["report"]["masked_by_controller"] == 0

    failing = _request(controller)
    agent = CaptureAgent(_link(controller), lambda w: (["vh-crm"], "no-root"), capture=capture)
    try:
        agent.poll_once()
        with controller.client("reader") as c:
            row = wait_for(
                lambda: (
                    (r := c.get(f"/api/v1/captures/{failing['id']}").json())["state"] == "failed"
                    and r
                ),
                what="the failure",
            )
    finally:
        agent.close()
    assert row["error"] == "live capture needs root" and row["agent"] == "t-agent"
