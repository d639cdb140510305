"""Quarantine's NetworkPolicy half against the local Kubernetes API server
(tests/identity/kubeserver.py, real HTTPS, the API server's Status documents): written, kept,
deleted with the lift, shared by several nodes (409 and 404), picked up after a restart, and
failures reported as events, never raised. What is written validates against the schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from stockade.firewall.enforce.clusterpolicy import (
    ClusterQuarantine,
    policy_document,
    policy_name,
)
from stockade.identity.kubeapi import api_client
from stockade.model import Event
from tests.deploy.test_render import KUBERNETES_VERSIONS
from tests.identity.kubeserver import FakeApiServer
from tests.identity.test_kubeapi import TOKEN, kubeconfig

ORDERS = "shop/orders-7d4b578979-x2x9k"
LABELS = {"app": "orders", "pod-template-hash": "7d4b578979"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(tmp_path, TOKEN) as server:
        yield server


def _node(api: FakeApiServer, tmp: Path, name: str = "worker-1") -> tuple[ClusterQuarantine, list]:
    events: list[Event] = []
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    client = api_client(kubeconfig(folder, api))
    return ClusterQuarantine(client, node=name, emit=events.append, timeout=5.0), events


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def test_quarantine_writes_a_deny_all_policy_and_lifting_deletes_it(api, tmp_path):
    node, events = _node(api, tmp_path)
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is True
    stored = api.networkpolicies[("shop", "stockade-quarantine-orders-7d4b578979-x2x9k")]
    assert stored["spec"] == {
        "podSelector": {"matchLabels": LABELS},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert "ingress" not in stored["spec"] and "egress" not in stored["spec"]  # deny all
    assert stored["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "stockade",
        "stockade.dev/quarantine": "true",
    }
    assert stored["metadata"]["annotations"] == {"stockade.dev/workload": ORDERS}
    assert _kinds(events) == ["firewall.quarantine_policy_written"]
    assert events[0].node == "worker-1" and events[0].resource.namespace == "shop"

    # idempotent: the same list again asks the API nothing
    before = len(api.policy_requests)
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is True
    assert len(api.policy_requests) == before

    assert node.sync(set(), {}) is True
    assert api.networkpolicies == {}
    assert _kinds(events)[-1] == "firewall.quarantine_policy_deleted"


def test_the_written_object_validates_against_the_kubernetes_schemas(api, tmp_path):
    node, _ = _node(api, tmp_path)
    long_pod = "shop/" + "a" * 250
    node.sync({ORDERS, long_pod}, {ORDERS: LABELS, long_pod: {"app": "long"}})
    assert len(api.networkpolicies) == 2
    for stored in api.networkpolicies.values():
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(
                policy_document(
                    stored["metadata"]["annotations"]["stockade.dev/workload"],
                    stored["spec"]["podSelector"]["matchLabels"],
                ),
                version,
                strict=True,
            )
            kubernetes_validate.validate(stored, version, strict=True)
    assert len(policy_name("a" * 250)) == 253


def test_nodes_sharing_a_quarantine_meet_409_and_404_quietly(api, tmp_path):
    one, one_events = _node(api, tmp_path, "worker-1")
    two, two_events = _node(api, tmp_path, "worker-2")
    assert two.sync(set(), {}) is True  # worker-2 has listed: nothing yet
    assert one.sync({ORDERS}, {ORDERS: LABELS}) is True
    assert two.sync({ORDERS}, {ORDERS: LABELS}) is True  # 409, read back: the same selector
    assert (
        "GET",
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/"
        "stockade-quarantine-orders-7d4b578979-x2x9k",
    ) in api.policy_requests
    assert _kinds(two_events) == []
    api.policy_requests.clear()
    assert one.sync(set(), {}) is True
    assert two.sync(set(), {}) is True  # 404: already deleted by worker-1
    assert api.networkpolicies == {}
    assert [m for m, _ in api.policy_requests] == ["DELETE", "DELETE"]
    assert _kinds(one_events) == [
        "firewall.quarantine_policy_written",
        "firewall.quarantine_policy_deleted",
    ]
    assert _kinds(two_events) == []


def test_a_restarted_enforcer_deletes_the_policies_of_lifted_quarantines(api, tmp_path):
    first, _ = _node(api, tmp_path)
    other = "billing/invoice-0"
    first.sync({ORDERS, other}, {ORDERS: LABELS, other: {"app": "invoice"}})
    # a policy someone else wrote, with the same namespace, is never touched
    api.networkpolicies[("shop", "allow-dns")] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns", "namespace": "shop", "uid": "u1"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
    }
    again, events = _node(api, tmp_path, "worker-1-restarted")
    assert again.sync({other}, {}) is True  # orders lifted while it was away
    assert sorted(api.networkpolicies) == [
        ("billing", "stockade-quarantine-invoice-0"),
        ("shop", "allow-dns"),
    ]
    assert _kinds(events) == ["firewall.quarantine_policy_deleted"]


def test_new_labels_replace_the_selector(api, tmp_path):
    node, _ = _node(api, tmp_path)
    node.sync({ORDERS}, {ORDERS: LABELS})
    relabelled = {**LABELS, "track": "canary"}
    assert node.sync({ORDERS}, {ORDERS: relabelled}) is True
    (stored,) = api.networkpolicies.values()
    assert stored["spec"]["podSelector"]["matchLabels"] == relabelled


def test_a_pod_without_labels_gets_no_policy_that_would_cut_its_namespace(api, tmp_path):
    node, events = _node(api, tmp_path)
    assert node.sync({"shop/bare"}, {"shop/bare": {}}) is True
    assert node.sync({"shop/bare"}, {"shop/bare": {}}) is True
    assert api.networkpolicies == {}
    assert _kinds(events) == ["firewall.quarantine_policy_skipped"]  # said once
    assert "whole namespace" in events[0].message


def test_refused_and_unreachable_api_are_events_and_retried(api, tmp_path, monkeypatch):
    node, events = _node(api, tmp_path)
    api.refuse_policies = True
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is False
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is False  # within the retry pause: no request
    assert _kinds(events) == ["firewall.quarantine_policy_failed"]
    assert "403" in events[0].message
    api.refuse_policies = False
    monkeypatch.setattr("stockade.firewall.enforce.clusterpolicy.RETRY_AFTER", 0.0)
    node._retry_at = 0.0
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is True
    assert len(api.networkpolicies) == 1
    assert _kinds(events)[-1] == "firewall.quarantine_policy_written"


def test_a_policy_of_that_name_that_is_not_stockades_is_left_and_reported(api, tmp_path):
    name = "stockade-quarantine-orders-7d4b578979-x2x9k"
    api.networkpolicies[("shop", name)] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop", "uid": "u2"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    node, events = _node(api, tmp_path)
    assert node.sync({ORDERS}, {ORDERS: LABELS}) is False
    assert api.networkpolicies[("shop", name)]["metadata"]["uid"] == "u2"
    assert _kinds(events) == ["firewall.quarantine_policy_failed"]
    assert "not Stockade's" in events[0].message
