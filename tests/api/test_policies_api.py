"""Firewall and admission policies through the controller's API (read, apply, diff, group modes),
audited before/after, and handed to the agents by configuration version."""

from __future__ import annotations

from typing import Any

import pytest

from stockade.store.records import list_events
from tests.api.controller import Controller

FIREWALL = "/api/v1/firewall/policy"
ADMISSION = "/api/v1/admission/policy"
POLICY = """\
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: api}
spec:
  groups:
    - name: cde
      selector: {namespace: shop}
      mode: monitor
      dlp: [{sensor: dlp.payment_card, action: block}]
    - {name: marketing, selector: {namespace: marketing}, mode: discover}
  rules:
    - {name: to-cde, from: [marketing], to: [cde], ports: [tcp/8080]}
"""
# line 12: a port out of range
BROKEN = POLICY.replace("tcp/8080", "tcp/99999")
ADMISSION_POLICY = """\
apiVersion: stockade.dev/v1
kind: AdmissionPolicy
metadata: {name: strict}
spec:
  mode: protect
  rules:
    - name: no-privileged
      criteria: {privileged: true}
"""


def config(controller: Controller, since: int | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": since}
    with controller.client("agent") as c:
        answer = c.get("/api/v1/agents/config", params=params)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def audits(controller: Controller, what: str) -> list[Any]:
    return list_events(controller.store, kind=f"audit.{what}")


def put(controller: Controller, role: str | None, path: str, body: str) -> Any:
    with controller.client(role) as c:
        return c.put(path, content=body.encode(), headers={"content-type": "application/yaml"})


@pytest.fixture(scope="module")
def applied(controller: Controller) -> Controller:
    """The controller with POLICY applied through the API (once per store)."""
    with controller.client("reader") as c:
        assert c.get(FIREWALL).status_code == 404  # nothing applied yet
    assert put(controller, None, FIREWALL, POLICY).status_code == 401
    assert put(controller, "reader", FIREWALL, POLICY).status_code == 403
    answer = put(controller, "operator", FIREWALL, POLICY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["modes"] == {"cde": "monitor", "marketing": "discover"}
    return controller


def test_a_policy_applied_through_the_api_is_read_back_and_audited(applied: Controller) -> None:
    with applied.client("reader") as c:
        body = c.get(FIREWALL).json()
        raw = c.get(FIREWALL, headers={"accept": "application/yaml"})
    assert body["name"] == "api" and body["version"] >= 1
    assert "dlp.payment_card" in body["yaml"]
    assert raw.headers["content-type"].startswith("application/yaml")
    assert raw.text == body["yaml"]

    [audit] = audits(applied, "firewall_policy_applied")
    assert audit.data["who"] == "token:t-operator"
    assert audit.data["before"] is None
    assert audit.data["after"]["modes"] == {"cde": "monitor", "marketing": "discover"}
    assert audit.data["after"]["rules"] == ["to-cde"]


def test_a_malformed_policy_is_400_with_its_line_and_changes_nothing(applied: Controller) -> None:
    with applied.client("reader") as c:
        before = c.get(FIREWALL).json()
    version = config(applied)["version"]
    answer = put(applied, "operator", FIREWALL, BROKEN)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("policy:12: spec.rules[0].ports"), detail
    assert "\n" not in detail
    assert put(applied, "operator", FIREWALL, "spec: [unclosed").status_code == 400
    with applied.client("reader") as c:
        assert c.get(FIREWALL).json() == before
    assert config(applied, version) == {"version": version, "unchanged": True}


def test_diff_against_the_policy_in_force(applied: Controller) -> None:
    with applied.client("reader") as c:
        same = c.post(f"{FIREWALL}/diff", content=POLICY.encode()).json()
        other = c.post(
            f"{FIREWALL}/diff", content=POLICY.replace("mode: monitor", "mode: protect").encode()
        ).json()
        bad = c.post(f"{FIREWALL}/diff", content=BROKEN.encode())
    assert same["changed"] is False and same["diff"] == ""
    assert other["changed"] is True
    assert "-    mode: monitor" in other["diff"] and "+    mode: protect" in other["diff"]
    assert bad.status_code == 400 and bad.json()["detail"].startswith("policy:12:")


def test_a_group_mode_switch_is_a_new_version_for_the_agents(applied: Controller) -> None:
    seen = config(applied)
    with applied.client("reader") as c:
        groups = {g["name"]: g for g in c.get("/api/v1/groups").json()["groups"]}
        assert groups["cde"]["mode"] == "monitor" and groups["cde"]["cde"] is True
        assert c.put("/api/v1/groups/cde/mode", json={"mode": "protect"}).status_code == 403
    with applied.client("operator") as c:
        assert c.put("/api/v1/groups/nope/mode", json={"mode": "protect"}).status_code == 404
        assert c.put("/api/v1/groups/cde/mode", json={"mode": "block"}).status_code == 400
        switched = c.put("/api/v1/groups/cde/mode", json={"mode": "protect"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["previous"] == "monitor"

    changed = config(applied, seen["version"])
    assert changed["version"] > seen["version"]
    assert "mode: protect" in changed["policy"]["yaml"]
    assert changed["policy"]["version"] == switched.json()["version"]
    assert "quarantine" not in changed  # only the kinds that changed
    assert config(applied, changed["version"])["unchanged"] is True
    # an agent starting afresh gets everything
    full = config(applied)
    assert full["quarantine"] == [] or isinstance(full["quarantine"], list)
    assert full["policy"]["yaml"] == changed["policy"]["yaml"]

    [audit] = audits(applied, "group_mode_changed")
    assert audit.data["who"] == "token:t-operator"
    assert audit.data["before"]["mode"] == "monitor" and audit.data["after"]["mode"] == "protect"

    with applied.client("operator") as c:
        back = c.put("/api/v1/groups/cde/mode", json={"mode": "monitor"})
    assert back.json()["previous"] == "protect"
    with applied.client("reader") as c:
        groups = {g["name"]: g for g in c.get("/api/v1/groups").json()["groups"]}
    assert groups["cde"]["mode"] == "monitor"


def test_the_admission_policy_is_read_applied_and_diffed(controller: Controller) -> None:
    with controller.client("reader") as c:
        builtin = c.get(ADMISSION).json()
        diff = c.post(f"{ADMISSION}/diff", content=ADMISSION_POLICY.encode()).json()
    assert builtin["stored"] is False and builtin["mode"] == "monitor"
    assert diff["changed"] is True and "+  mode: protect" in diff["diff"]

    seen = config(controller)["version"]
    assert put(controller, "reader", ADMISSION, ADMISSION_POLICY).status_code == 403
    broken = put(controller, "operator", ADMISSION, ADMISSION_POLICY.replace("protect", "maybe"))
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("admission-policy:5: spec.mode"), broken.text
    assert config(controller, seen)["unchanged"] is True

    answer = put(controller, "operator", ADMISSION, ADMISSION_POLICY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "protect" and answer.json()["stored"] is True
    with controller.client("reader") as c:
        stored = c.get(ADMISSION).json()
        same = c.post(f"{ADMISSION}/diff", content=ADMISSION_POLICY.encode()).json()
    assert stored["yaml"] == ADMISSION_POLICY and stored["name"] == "strict"
    assert same["changed"] is False
    assert config(controller, seen)["admission"]["yaml"] == ADMISSION_POLICY

    [audit] = audits(controller, "admission_policy_applied")
    assert audit.data["before"]["stored"] is False and audit.data["before"]["mode"] == "monitor"
    assert audit.data["after"]["name"] == "strict"


def test_a_card_number_in_a_policy_is_masked_and_a_huge_document_refused(
    applied: Controller,
) -> None:
    card = "4111 1111 1111 1111"
    named = POLICY.replace("{name: api}", f'{{name: "shop {card}"}}')
    answer = put(applied, "operator", FIREWALL, named)
    assert answer.status_code == 200, answer.text
    with applied.client("reader") as c:
        stored = c.get(FIREWALL).json()
    followed = config(applied)["policy"]["yaml"]
    audit = max(audits(applied, "firewall_policy_applied"), key=lambda e: e.at)
    for text in (answer.text, stored["yaml"], stored["name"], followed, str(audit.data)):
        assert card not in text and "4111 **** **** 1111" in text

    huge = POLICY + "#" * (1024 * 1024)
    assert put(applied, "operator", FIREWALL, huge).status_code == 413
    with applied.client("reader") as c:
        assert c.get(FIREWALL).json() == stored
