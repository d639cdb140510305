"""Framework reports read what the network, firewall and admission pillars saw: a card in clear
captured by the real sensor fails PCI DSS 4.2.1 with masked evidence; watched traffic with nothing
in clear passes it with the window stated; no sensor data leaves it not assessed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stockade.compliance.frameworks import evaluate, load
from stockade.compliance.frameworks.evidence import Window, rows_from_events
from stockade.model import Event, Finding, Pillar, ResourceRef, Severity, Status
from stockade.store import Store
from stockade.store.records import list_findings, record_findings
from tests.network.frames import conversation, pcap

CARD = "4111 1111 1111 1111"
REPO = Path(__file__).resolve().parents[3]


def stockade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args], capture_output=True, text=True, timeout=120
    )


def _capture(path: Path, body: bytes) -> Path:
    request = b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    packets = conversation("10.1.0.5", "10.1.0.9", 40000, 80, request, b"HTTP/1.1 200 OK\r\n\r\n")
    now = time.time()
    from tests.network.frames import ether

    path.write_bytes(pcap([(now + i / 1000, ether(p)) for i, p in enumerate(packets)]))
    return path


def _report(db: str, *extra: str) -> dict[str, Any]:
    out = stockade(
        "report", "compliance", "--framework", "pci-dss", "-f", "json", "--db", db, *extra
    )
    assert out.returncode == 0, out.stderr
    return {r["id"]: r for r in json.loads(out.stdout)["requirements"]}


def test_a_card_in_clear_seen_by_the_sensor_fails_4_2_1(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    cap = _capture(tmp_path / "card.pcap", f"card={CARD}&amount=10".encode())
    sensed = stockade("sensor", "--pcap", str(cap), "--db", db, "--format", "json")
    assert sensed.returncode == 0, sensed.stderr
    req = _report(db)["4.2.1"]
    assert req["status"] == "FAIL"
    failing = [f for c in req["checks"] for f in c["failures"] if c["id"] == "dlp.payment_card"]
    assert failing, req
    assert "4111 **** **** 1111" in failing[0]["evidence"]
    assert failing[0]["location"].startswith("connection ")
    assert "10.1.0.9" in failing[0]["evidence"] or "10.1.0.9" in json.dumps(req)
    assert CARD.replace(" ", "") not in json.dumps(req) and CARD not in json.dumps(req)
    # the same card, captured before the window, is outside a report of the last hour only
    assert _report(db, "--since", "2099-01-01")["4.2.1"]["status"] == "NOT_ASSESSED"


def test_watched_traffic_without_cards_passes_with_its_window(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    cap = _capture(tmp_path / "clean.pcap", b"item=42&amount=10")
    assert stockade("sensor", "--pcap", str(cap), "--db", db).returncode == 0
    req = _report(db)["4.2.1"]
    assert req["status"] == "PASS", req
    (ev,) = [f for c in req["checks"] for f in c["failures"]] or [None]
    passing = [c for c in req["checks"] if c["counts"]["PASS"]]
    assert [c["id"] for c in passing] == ["dlp.sensitive_in_clear"]
    assert ev is None  # nothing failed


def test_without_sensor_data_4_2_1_is_not_assessed_and_says_why(tmp_path: Path) -> None:
    req = _report(str(tmp_path / "empty.db"))["4.2.1"]
    assert req["status"] == "NOT_ASSESSED"
    assert "no stored results or events from" in req["reason"]


def test_checks_that_were_all_not_applicable_assess_nothing(sqlite_store: Store) -> None:
    na = [
        Finding(
            id=f"k8s.apiserver.check_{i}",
            pillar=Pillar.COMPLIANCE,
            title="t",
            severity=Severity.MEDIUM,
            resource=ResourceRef(kind="node", name="host"),
            status=Status.NOT_APPLICABLE,
            compliance=("pci-dss:8.3.1",),
        )
        for i in range(3)
    ]
    record_findings(sqlite_store, na)
    report = evaluate(load("pci-dss"), list_findings(sqlite_store))
    (res,) = [r for r in report.results if r.requirement.id == "8.3.1"]
    assert res.status == "NOT_ASSESSED"
    assert "none passed or failed (3 not applicable)" in res.reason


def _window() -> Window:
    now = datetime.now(UTC)
    return Window(since=now - timedelta(hours=24), until=now)


def _policy_event(mode: str) -> Event:
    return Event(
        kind="firewall.policy_applied",
        message="applied",
        data={
            "groups": [
                {"name": "cde", "mode": mode, "selector": {"namespace": "shop"}, "cde": True},
                {"name": "web", "mode": "monitor", "selector": {"namespace": "web"}, "cde": False},
            ],
            "rules": [
                {
                    "name": "web-to-cde",
                    "from": ["web"],
                    "to": ["cde"],
                    "ports": ["tcp/8443"],
                    "action": "allow",
                }
            ],
        },
    )


def test_segmentation_state_evidences_1_3_1() -> None:
    fw = load("pci-dss")
    for mode, expected in (("monitor", "FAIL"), ("protect", "PASS")):
        rows = rows_from_events([_policy_event(mode)], _window())
        (res,) = [r for r in evaluate(fw, [], evidence=rows).results if r.requirement.id == "1.3.1"]
        assert res.status == expected
        assert res.checks[0].id == "firewall.segmentation"
    (row,) = rows_from_events([_policy_event("monitor")], _window())
    assert "web-to-cde (web -> cde tcp/8443)" in row["details"]["evidence"]


def test_policy_apply_records_the_segmentation_state(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    applied = stockade(
        "policy", "apply", str(REPO / "examples" / "firewall" / "policy.yaml"), "--db", db
    )
    assert applied.returncode == 0, applied.stderr
    req = _report(db)["1.3.1"]
    seg = [c for c in req["checks"] if c["id"] == "firewall.segmentation"]
    assert seg and seg[0]["counts"]["PASS"] == 1  # the example's cde group is in Protect


def test_blocked_and_monitored_firewall_events_count_both_ways() -> None:
    blocked = Event(
        kind="dlp.blocked",
        message="dlp.payment_card in clear: 4111 **** **** 1111",
        data={"action": "block"},
    )
    let_through = Event(
        kind="tls.required", message="proto.postgres in clear", data={"action": "alert"}
    )
    rows = rows_from_events([blocked, let_through], _window())
    assert [(r["finding_id"], r["status"]) for r in rows] == [
        ("dlp.blocked", "PASS"),
        ("tls.required", "FAIL"),
    ]
