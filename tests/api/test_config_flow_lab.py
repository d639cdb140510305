"""End to end on the lab, the controller WITHOUT node access (no ``--lab-state``): a card posted
into the CDE makes a response rule record a quarantine; an enforcer started with ``--controller``
follows the controller's configuration by version, cuts the pod's traffic with nft within seconds
and reports ``firewall.quarantined`` (the controller marks it applied); lifting it through the API
restores the traffic within seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.controller import (
    LAB_CARD,
    Controller,
    batch,
    card_in_clear_from_crm,
)
from tests.api.lab import Setup, enforced_lab
from tests.api.responding import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORDERS = "http://10.77.0.11:8080/"
CARD = LAB_CARD
RULES = """\
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: flow}
spec:
  rules:
    - name: card-into-cde
      mode: active
      match:
        events: [dlp.sensitive_in_clear]
        sensors: [dlp.payment_card]
        namespaces: [marketing]
      actions: [quarantine]
"""
POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: watch}
spec:
  groups:
    - {name: marketing, selector: {namespace: marketing}, mode: monitor}
    - {name: shop, selector: {namespace: shop}, mode: monitor}
  rules:
    - {name: to-shop, from: [marketing, shop], to: [shop], ports: [tcp/8080]}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    prefix = f"cf{os.getpid() % 10000}-"
    yield from enforced_lab(tmp_path_factory, prefix, rules=RULES, policy=POLICY)


def quarantined(controller: Controller) -> dict[str, Any]:
    with controller.client("reader") as c:
        answer = c.get("/api/v1/quarantine").json()
    assert answer["mode"] == "recorded"
    return {w["workload"]: w for w in answer["workloads"]}


def test_a_quarantine_recorded_at_the_controller_reaches_the_enforcer(lab: Setup) -> None:
    assert lab.curl("crm", ORDERS) == (0, "200")
    card = card_in_clear_from_crm()
    with lab.controller.client("agent") as c:
        assert c.post("/api/v1/agents/events", json=batch([card.to_dict()])).status_code == 200

    # the enforcer polls every 2 seconds: the pod's traffic is cut within seconds
    wait_for(lambda: lab.curl("crm", ORDERS, timeout=1)[0] == 28, timeout=10, what="the cut")
    assert lab.curl("payments", ORDERS) == (0, "200")  # the others are untouched
    row = wait_for(
        lambda: (r := quarantined(lab.controller).get("marketing/crm")) and r["applied"] and r,
        what="the enforcer's report",
    )
    assert "10.77.0" in " ".join(row["addresses"])

    with lab.controller.client("operator") as c:
        assert c.delete("/api/v1/quarantine/marketing/crm").status_code == 200
    wait_for(lambda: lab.curl("crm", ORDERS, timeout=1) == (0, "200"), timeout=10, what="lift")

    def lifted_by_the_enforcer() -> bool:
        with lab.controller.client("reader") as c:
            page = c.get("/api/v1/events", params={"kind": "firewall.quarantine_lifted"}).json()
        return any(
            e["source"] == "enforcer" and e["resource"]["name"] == "crm" for e in page["events"]
        )

    wait_for(lifted_by_the_enforcer, what="the enforcer's lift event")
    assert lab.enforcer.poll() is None and "Traceback" not in lab.log.read_text()
