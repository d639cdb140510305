"""The controller responding on its own (`--rules`, `--targets`, no node access): events go to the
rules as they are stored, notifications reach a real webhook receiver signed, quarantine is recorded
for the enforcers and lifted through the API, scan summaries quarantine by vulnerability criteria,
rules and targets are replaced through the API, and a burst of 10,000 events is ingested without
waiting for the rules and evaluated without loss."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from stockade.model import ResourceRef
from stockade.store.records import list_events
from stockade.store.tables import events
from tests.api.controller import Controller, batch, event, running_controller
from tests.api.responding import RULES, deliveries_of, targets_yaml, wait_for, write
from tests.events.receivers import HttpReceiver, make_certs, serve_http

CARD = "4111 1111 1111 1111"
INGEST = "/api/v1/agents/events"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Controller, HttpReceiver]]:
    tmp = tmp_path_factory.mktemp("responding")
    certs = make_certs(tmp / "receiver-tls")
    with serve_http(HttpReceiver(), certs) as receiver:
        rules = write(tmp / "rules.yaml", RULES)
        targets = write(tmp / "targets.yaml", targets_yaml(receiver, certs))
        args = ("--rules", str(rules), "--targets", str(targets))
        for c in running_controller(
            request.param, tmp_path_factory, "stockade_responding_test", *args
        ):
            yield c, receiver


@pytest.fixture
def controller(setup: tuple[Controller, HttpReceiver]) -> Controller:
    return setup[0]


@pytest.fixture
def webhook(setup: tuple[Controller, HttpReceiver]) -> HttpReceiver:
    return setup[1]


def pod(name: str, namespace: str) -> ResourceRef:
    return ResourceRef(kind="pod", name=name, namespace=namespace)


def card_event(sender: str, namespace: str = "marketing") -> dict[str, Any]:
    return event(
        kind="dlp.sensitive_in_clear",
        message=f"dlp.payment_card in clear http: {CARD}",
        resource=pod(sender, namespace),
        peer=pod("orders", "shop"),
        data={"sensor": "dlp.payment_card", "evidence": [CARD], "server_port": 8080},
    )


def kinds(controller: Controller, kind: str) -> list[Any]:
    return list_events(controller.store, kind=kind)


def would_act(controller: Controller) -> int:
    """How many ``response.would_act`` events are stored (a COUNT, nothing read back)."""
    q = select(func.count()).select_from(events).where(events.c.kind == "response.would_act")
    with controller.store.connect() as conn:
        return int(conn.execute(q).scalar_one())


def quarantined(controller: Controller) -> dict[str, Any]:
    with controller.client("reader") as c:
        answer = c.get("/api/v1/quarantine")
    assert answer.status_code == 200, answer.text
    return {w["workload"]: w for w in answer.json()["workloads"]}


def test_a_card_in_clear_is_notified_signed_and_the_sender_quarantined(
    controller: Controller, webhook: HttpReceiver
) -> None:
    sender = f"crm-{uuid.uuid4().hex[:6]}"
    e = card_event(sender)
    with controller.client("agent") as c:
        answer = c.post(INGEST, json=batch([e]))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1

    [delivery] = wait_for(lambda: deliveries_of(webhook, e["id"]), what="the webhook delivery")
    assert delivery.signature_ok is True
    assert CARD not in delivery.body.decode() and "4111 **** **** 1111" in delivery.body.decode()

    workload = f"marketing/{sender}"
    row = wait_for(lambda: quarantined(controller).get(workload), what="the quarantine")
    assert row["applied"] is False  # no node access: awaits an enforcer
    assert "card-into-cde" in row["reason"]
    [pending] = [
        p for p in kinds(controller, "firewall.quarantine_pending") if p.resource.name == sender
    ]
    assert "awaits an enforcer" in pending.message

    with controller.client("reader") as c:
        acted = c.get("/api/v1/events", params={"kind": "response.acted"}).json()["events"]
    mine = [a for a in acted if a["data"]["trigger"]["id"] == e["id"]]
    assert sorted(a["data"]["action"] for a in mine) == ["notify", "quarantine"]
    assert {a["rule"] for a in mine} == {"card-into-cde"}

    with controller.client("reader") as c:
        assert c.delete(f"/api/v1/quarantine/{workload}").status_code == 403
    with controller.client("operator") as c:
        assert c.delete(f"/api/v1/quarantine/{workload}").json() == {
            "workload": workload,
            "lifted": True,
        }
        assert c.delete(f"/api/v1/quarantine/{workload}").status_code == 404
    assert workload not in quarantined(controller)
    lifted = [a for a in kinds(controller, "audit.quarantine_lifted") if workload in a.message]
    assert lifted and lifted[0].data["who"] == "token:t-operator"
    assert lifted[0].data["before"]["workload"] == workload


def agent_config(controller: Controller, since: int | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": since}
    with controller.client("agent") as c:
        answer = c.get("/api/v1/agents/config", params=params)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def test_the_enforcers_follow_recorded_quarantines_by_version(controller: Controller) -> None:
    sender = f"crm-{uuid.uuid4().hex[:6]}"
    workload = f"marketing/{sender}"
    before = agent_config(controller)
    assert agent_config(controller, before["version"]) == {
        "version": before["version"],
        "unchanged": True,
    }
    with controller.client("agent") as c:
        assert c.post(INGEST, json=batch([card_event(sender)])).status_code == 200
    wait_for(lambda: quarantined(controller).get(workload), what="the quarantine")

    after = agent_config(controller, before["version"])
    assert after["version"] > before["version"]
    [listed] = [q for q in after["quarantine"] if q["workload"] == workload]
    assert "card-into-cde" in listed["reason"] and listed["since"]
    assert agent_config(controller, after["version"])["unchanged"] is True

    # an enforcer reports it applied: marked applied, and the agents' version does not move
    applied = event(
        kind="firewall.quarantined",
        source="enforcer",
        message=f"{workload} quarantined",
        resource=pod(sender, "marketing"),
        data={"addresses": ["10.77.0.99"], "reason": "controller: card-into-cde"},
    )
    with controller.client("agent") as c:
        assert c.post(INGEST, json=batch([applied])).status_code == 200
    row = quarantined(controller)[workload]
    assert row["applied"] is True and row["addresses"] == ["10.77.0.99"]
    assert agent_config(controller, after["version"])["unchanged"] is True

    with controller.client("operator") as c:
        assert c.delete(f"/api/v1/quarantine/{workload}").status_code == 200
    lifted = agent_config(controller, after["version"])
    assert lifted["version"] > after["version"]
    assert workload not in {q["workload"] for q in lifted["quarantine"]}

    with controller.client("reader") as c:
        assert c.get("/api/v1/agents/config").status_code == 403
    with controller.client("agent") as c:
        assert c.get("/api/v1/agents/config", params={"since": "x"}).status_code == 400


def test_a_suppressed_event_is_flagged_and_nobody_is_told(
    controller: Controller, webhook: HttpReceiver
) -> None:
    e = event(resource=pod("calm", "quiet"), message="quiet please")
    with controller.client("agent") as c:
        assert c.post(INGEST, json=batch([e])).status_code == 200

    def flagged() -> Any:
        [stored] = [x for x in list_events(controller.store, kind=e["kind"]) if x.id == e["id"]]
        return stored.data.get("suppressed")

    assert wait_for(flagged, what="the suppressed flag") == {"rule": "quiet-lab"}
    time.sleep(0.5)
    assert deliveries_of(webhook, e["id"]) == []


def test_a_scan_summary_quarantines_the_workloads_running_the_image(
    controller: Controller,
) -> None:
    digest = "sha256:" + uuid.uuid4().hex * 2
    name = f"api-{uuid.uuid4().hex[:6]}"
    summary = {
        "image": "registry.local/shop/api:1.2",
        "digest": digest,
        "counts": {"critical": 2, "high": 4},
        "fixable": {"critical": 1},
        "images": {f"shop/{name}": f"registry.local/shop/api@{digest}", "shop/other": "x:1"},
    }
    with controller.client("reader") as c:
        assert c.post("/api/v1/scans/summary", json=summary).status_code == 403
    with controller.client("agent") as c:
        answer = c.post("/api/v1/scans/summary", json=summary)
    assert answer.status_code == 202, answer.text
    assert answer.json()["workloads"] == [f"shop/{name}"]
    row = wait_for(lambda: quarantined(controller).get(f"shop/{name}"), what="the quarantine")
    assert "critical-images" in row["reason"]
    # the quarantine is stored a moment before the response.acted event that records it
    acted = wait_for(
        lambda: [
            a
            for a in kinds(controller, "response.acted")
            if a.data.get("workload") == f"shop/{name}"
        ],
        what="the response.acted event",
    )
    assert [(a.rule, a.data["action"]) for a in acted] == [("critical-images", "quarantine")]
    assert "shop/other" not in quarantined(controller)


def test_an_ingested_scan_completed_event_is_a_scan_result(controller: Controller) -> None:
    name = f"web-{uuid.uuid4().hex[:6]}"
    e = event(
        kind="scan.completed",
        message="scan of registry.local/web:2",
        data={
            "image": "registry.local/web:2",
            "counts": {"critical": 1},
            "images": {f"shop/{name}": "registry.local/web:2"},
        },
    )
    with controller.client("agent") as c:
        assert c.post(INGEST, json=batch([e])).status_code == 200
    assert wait_for(lambda: quarantined(controller).get(f"shop/{name}"), what="the quarantine")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"image": "x", "counts": {"severe": 1}}, "counts"),
        ({"image": "", "counts": {}}, "image"),
        ({"image": "x", "digest": "md5:00"}, "digest"),
    ],
)
def test_a_bad_scan_summary_is_a_one_line_400(
    controller: Controller, body: dict[str, Any], says: str
) -> None:
    with controller.client("agent") as c:
        answer = c.post("/api/v1/scans/summary", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["detail"] and "\n" not in answer.json()["detail"]


def test_rules_and_targets_are_replaced_through_the_api(controller: Controller) -> None:
    rules_file = controller.args[controller.args.index("--rules") + 1]
    original = Path(rules_file).read_text(encoding="utf-8")
    extra = (
        "    - name: added-by-api\n      mode: active\n      match: {namespaces: [added]}\n"
        "      actions: [quarantine]\n"
    )
    try:
        with controller.client("operator") as c:
            answer = c.put("/api/v1/response-rules", content=original + extra)
            assert answer.status_code == 200, answer.text
            assert "added-by-api" in [r["name"] for r in answer.json()["rules"]]
            bad = c.put(
                "/api/v1/response-rules", content=original.replace("mode: active", "mode: loud", 1)
            )
            assert bad.status_code == 400
            assert bad.json()["detail"].startswith("response-rules:")
            assert "\n" not in bad.json()["detail"]
        with controller.client("reader") as c:
            names = [r["name"] for r in c.get("/api/v1/response-rules").json()["rules"]]
        assert "added-by-api" in names  # the bad document changed nothing
        # the store holds the rules (every replica's); --rules FILE only seeded it
        assert Path(rules_file).read_text(encoding="utf-8") == original
        [audit] = [
            a
            for a in kinds(controller, "audit.response_rules_replaced")
            if "added-by-api" in str(a.data["after"])
        ]
        assert audit.data["who"] == "token:t-operator"
        assert "added-by-api" not in str(audit.data["before"])

        e = event(resource=pod("fresh", "added"))
        with controller.client("agent") as c:
            assert c.post(INGEST, json=batch([e])).status_code == 200
        assert wait_for(lambda: quarantined(controller).get("added/fresh"), what="quarantine")
    finally:
        with controller.client("admin") as c:
            assert c.put("/api/v1/response-rules", content=original).status_code == 200

    targets_file = controller.args[controller.args.index("--targets") + 1]
    targets = Path(targets_file).read_text(encoding="utf-8")
    with controller.client("admin") as c:
        bad = c.put(
            "/api/v1/notification-targets", content="targets:\n  - name: x\n    kind: pager\n"
        )
        assert bad.status_code == 400 and "unknown kind 'pager'" in bad.json()["detail"]
        answer = c.put("/api/v1/notification-targets", content=targets)
        assert answer.status_code == 200, answer.text
        listed = c.get("/api/v1/notification-targets").json()
    assert [t["name"] for t in listed] == ["soc"]
    assert "settings" not in listed[0]  # secrets never leave


@pytest.mark.slow
def test_a_burst_is_ingested_at_once_and_evaluated_without_loss(controller: Controller) -> None:
    """10,000 events in 10 batches, each matched by a monitor rule that records what it would do:
    ingestion does not wait for the rules (all batches answered while most are still to be
    evaluated, each quickly) and every event is evaluated once."""
    batches = [
        [
            event(i, resource=pod(f"b{i % 50}", "burst"), message=f"burst {i}")
            for i in range(k * 1000, (k + 1) * 1000)
        ]
        for k in range(10)
    ]
    before = would_act(controller)
    latencies = []
    with controller.client("agent") as c:
        for b in batches:
            t0 = time.monotonic()
            answer = c.post(INGEST, json=batch(b))
            latencies.append(time.monotonic() - t0)
            assert answer.json() == {"accepted": 1000, "duplicates": 0}
    ids = {e["id"] for b in batches for e in b}

    def evaluated() -> set[str]:
        return {
            w.data["trigger"]["id"]
            for w in list_events(controller.store, kind="response.would_act", limit=100_000)
            if w.data["trigger"]["id"] in ids
        }

    behind = len(ids) - len(evaluated())
    assert max(latencies) < 3.0, latencies
    assert behind > 0 or max(latencies) < 1.0  # ingestion did not wait for the rules
    # a COUNT first: reading 10,000 events back every 0.1 s took the controller's CPU
    done = wait_for(
        lambda: would_act(controller) >= before + len(ids) and len(evaluated()) == len(ids),
        timeout=240,
        what="every event",
    )
    assert done
    assert len(list_events(controller.store, kind="response.would_act", limit=100_000)) >= len(ids)
    stored = {
        x.id for x in list_events(controller.store, kind="dlp.sensitive_in_clear", limit=100_000)
    }
    assert ids <= stored


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--lab-state", "/nonexistent/lab.json"), "no lab state at /nonexistent/lab.json"),
        (("--rules", "/nonexistent/rules.yaml"), "/nonexistent/rules.yaml"),
        (("--targets", "/nonexistent/targets.yaml"), "/nonexistent/targets.yaml"),
    ],
)
def test_bad_files_stop_the_controller_in_one_line(
    tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "stockade", "controller", "--port", "0"),
            *("--db", f"sqlite:///{tmp_path / 's.db'}", "--cert-dir", str(tmp_path / "tls")),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (2, 3), proc.stderr
    assert proc.stderr.startswith("stockade: error: ") and says in proc.stderr
