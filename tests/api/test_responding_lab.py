"""End to end on the lab: the controller in single-node mode (``--lab-state``) with a rules file and
real receivers. A card posted in clear into the CDE, reported as an agent would, is delivered to a
webhook that verifies the HMAC and to rsyslog, and the sending pod is quarantined by nft in the node
namespace (its next connection times out); lifting through the API restores it. A scan summary
that makes a running workload's image critical quarantines it by rule."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.api.controller import (
    LAB_CARD,
    Controller,
    batch,
    card_in_clear_from_crm,
    running_controller,
)
from tests.api.lab import curl_in, lab_command
from tests.api.responding import RULES, deliveries_of, targets_yaml, wait_for, write
from tests.events.receivers import HttpReceiver, Rsyslog, make_certs, run_rsyslog, serve_http
from tests.support import require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORDERS = "http://10.77.0.11:8080/"
CARD = LAB_CARD


@dataclass
class Setup:
    controller: Controller
    webhook: HttpReceiver
    rsyslog: Rsyslog
    prefix: str

    def curl(self, pod: str, url: str, timeout: float = 2) -> tuple[int, str]:
        return curl_in(f"{self.prefix}{pod}", url, timeout)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_root("ip", "nft", "curl")
    tmp = tmp_path_factory.mktemp("responding-lab")
    prefix = f"rw{os.getpid() % 10000}-"
    state = tmp / "lab.json"
    with ExitStack() as stack:
        up = lab_command("up", "--prefix", prefix, "--state", str(state), "--no-databases")
        stack.callback(lab_command, "down", "--prefix", prefix, "--state", str(state))
        assert up.returncode == 0, up.stderr
        certs = make_certs(tmp / "receiver-tls")
        webhook = stack.enter_context(serve_http(HttpReceiver(), certs))
        rsyslog = stack.enter_context(run_rsyslog(tmp / "rsyslog"))
        syslog = (
            "  - name: syslog\n    kind: syslog\n    timeout: 2\n"
            f"    settings: {{host: 127.0.0.1, port: {rsyslog.tcp_port}, transport: tcp}}\n"
        )
        rules = write(tmp / "rules.yaml", RULES.replace("notify: [soc]", "notify: [soc, syslog]"))
        targets = write(tmp / "targets.yaml", targets_yaml(webhook, certs, syslog))
        args = ("--rules", str(rules), "--targets", str(targets), "--lab-state", str(state))
        controllers = running_controller("sqlite", tmp_path_factory, "unused", *args)
        controller = next(controllers)
        stack.callback(lambda: next(controllers, None))
        yield Setup(controller=controller, webhook=webhook, rsyslog=rsyslog, prefix=prefix)


def quarantined(controller: Controller) -> dict[str, dict]:
    with controller.client("reader") as c:
        answer = c.get("/api/v1/quarantine").json()
    assert answer["mode"] == "node"
    return {w["workload"]: w for w in answer["workloads"]}


def test_a_card_into_the_cde_quarantines_the_sender_and_tells_people(lab: Setup) -> None:
    assert lab.curl("crm", ORDERS) == (0, "200")
    card = card_in_clear_from_crm()
    with lab.controller.client("agent") as c:
        assert c.post("/api/v1/agents/events", json=batch([card.to_dict()])).status_code == 200

    [delivery] = wait_for(lambda: deliveries_of(lab.webhook, card.id), what="the webhook")
    assert delivery.signature_ok is True
    assert delivery.json()["event"]["resource"]["name"] == "crm"
    assert CARD not in delivery.body.decode()
    [line] = wait_for(
        lambda: [x for x in lab.rsyslog.lines() if card.id in x["raw"]], what="the syslog line"
    )
    assert line["msgid"] == "dlp.sensitive_in_clear" and CARD not in line["raw"]

    row = wait_for(lambda: quarantined(lab.controller).get("marketing/crm"), what="quarantine")
    assert row["applied"] is True and "10.77.0" in " ".join(row["addresses"])
    assert lab.curl("crm", ORDERS)[0] == 28  # its next connection is dropped: it times out
    assert lab.curl("payments", ORDERS) == (0, "200")  # the others are untouched

    with lab.controller.client("operator") as c:
        assert c.delete("/api/v1/quarantine/marketing/crm").status_code == 200
    assert "marketing/crm" not in quarantined(lab.controller)
    assert lab.curl("crm", ORDERS) == (0, "200")


def test_a_critical_image_quarantines_the_workload_running_it(lab: Setup) -> None:
    digest = "sha256:" + uuid.uuid4().hex * 2
    summary = {
        "image": "registry.local/shop/orders:3",
        "digest": digest,
        "counts": {"critical": 1},
        "images": {"shop/orders": f"registry.local/shop/orders@{digest}"},
    }
    assert lab.curl("payments", ORDERS) == (0, "200")
    with lab.controller.client("agent") as c:
        assert c.post("/api/v1/scans/summary", json=summary).status_code == 202
    row = wait_for(lambda: quarantined(lab.controller).get("shop/orders"), what="quarantine")
    assert "critical-images" in row["reason"] and row["applied"] is True
    try:
        assert lab.curl("payments", ORDERS)[0] == 28
    finally:
        with lab.controller.client("admin") as c:
            assert c.delete("/api/v1/quarantine/shop/orders").status_code == 200
    assert lab.curl("payments", ORDERS) == (0, "200")
