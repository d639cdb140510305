"""End to end on the lab: the firewall policy flows from the controller's API to an enforcer
started with ``--controller`` (and no local policy) by version. Switching the CDE group from
Monitor to Protect through the API makes marketing's next request into it fail within seconds;
switching back lets it through; a malformed policy is 400 with its line and changes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.controller import Controller
from tests.api.lab import Setup, enforced_lab
from tests.api.responding import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORDERS = "http://10.77.0.11:8080/"
POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: flow}
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: monitor}
    - {name: marketing, selector: {namespace: marketing}, mode: monitor}
  rules:
    - {name: cde-api, from: [cde], to: [cde], ports: [tcp/8080]}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    yield from enforced_lab(tmp_path_factory, f"pf{os.getpid() % 10000}-")


def applied_versions(controller: Controller, kind: str = "firewall.policy_applied") -> list[Any]:
    """The policy versions the enforcer reported applying (or rejecting), oldest first."""
    with controller.client("reader") as c:
        page = c.get("/api/v1/events", params={"kind": kind}).json()
    return sorted(e["data"]["version"] for e in page["events"] if e["source"] == "enforcer")


def switch(controller: Controller, mode: str) -> int:
    with controller.client("operator") as c:
        answer = c.put("/api/v1/groups/cde/mode", json={"mode": mode})
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


def test_a_mode_switched_through_the_api_reaches_the_enforcer_within_seconds(lab: Setup) -> None:
    with lab.controller.client("operator") as c:
        answer = c.put("/api/v1/firewall/policy", content=POLICY.encode())
    assert answer.status_code == 200, answer.text
    first = answer.json()["version"]
    wait_for(lambda: first in applied_versions(lab.controller), what="the policy applied")
    assert lab.curl("crm", ORDERS) == (0, "200")  # monitor: recorded, let through

    protected = switch(lab.controller, "protect")
    # the enforcer asks every 2 seconds: marketing's next request into the CDE fails
    wait_for(lambda: lab.curl("crm", ORDERS, timeout=1)[1] != "200", timeout=10, what="the block")
    assert lab.curl("payments", ORDERS) == (0, "200")  # cde -> cde is allowed by its rule
    wait_for(lambda: protected in applied_versions(lab.controller), what="the enforcer's report")

    monitored = switch(lab.controller, "monitor")
    wait_for(lambda: lab.curl("crm", ORDERS, timeout=1) == (0, "200"), timeout=10, what="back")
    wait_for(lambda: monitored in applied_versions(lab.controller), what="the enforcer's report")
    assert lab.enforcer.poll() is None and "Traceback" not in lab.log.read_text()


def test_a_malformed_policy_is_refused_and_changes_nothing(lab: Setup) -> None:
    with lab.controller.client("reader") as c:
        before = c.get("/api/v1/firewall/policy").json()
    with lab.controller.client("operator") as c:
        answer = c.put(
            "/api/v1/firewall/policy",
            content=POLICY.replace("mode: monitor}", "mode: protect}").replace(
                "tcp/8080", "tcp/80800"
            ),
        )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("policy:9: spec.rules[0].ports"), answer.text
    with lab.controller.client("reader") as c:
        assert c.get("/api/v1/firewall/policy").json() == before
    reported = applied_versions(lab.controller)
    for _ in range(3):  # longer than a poll: nothing reaches the enforcer
        assert lab.curl("crm", ORDERS) == (0, "200")
    assert applied_versions(lab.controller) == reported
    assert applied_versions(lab.controller, "firewall.policy_rejected") == []
