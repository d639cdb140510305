"""Policy files, the decision engine, learning and NetworkPolicy conversion (no kernel needed)."""

from __future__ import annotations

import pytest
import yaml

from stockade.firewall.policy.engine import Endpoint, data_needs, evaluate
from stockade.firewall.policy.files import dump, load_files, parse_texts
from stockade.firewall.policy.learn import policy_from_learned
from stockade.firewall.policy.model import parse_port
from stockade.firewall.policy.netpol import export_policies, import_policies
from stockade.model import ConfigError
from tests.firewall.conftest import EXAMPLES

PAY = Endpoint(
    ip="10.77.0.10", name="payments", namespace="shop", labels={"app": "payments", "pci": "cde"}
)
ORD = Endpoint(
    ip="10.77.0.11", name="orders", namespace="shop", labels={"app": "orders", "pci": "cde"}
)
DB = Endpoint(ip="10.77.0.12", name="db", namespace="data", labels={"app": "postgres"})
CRM = Endpoint(ip="10.77.0.14", name="crm", namespace="marketing", labels={"app": "crm"})
WORLD = Endpoint(ip="198.51.100.10", external=True)
OTHER = Endpoint(ip="10.9.9.9", name="x", namespace="other")
POLICY = load_files([EXAMPLES / "policy.yaml"])


@pytest.mark.parametrize(
    ("src", "dst", "port", "app", "action", "rule"),
    [
        (PAY, ORD, 8080, None, "inspect", "cde-api"),
        (PAY, ORD, 8080, "proto.http", "allow", "cde-api"),
        (
            PAY,
            ORD,
            8080,
            "proto.redis",
            "deny",
            None,
        ),  # wrong protocol on an allowed port: implicit deny
        (PAY, ORD, 22, None, "deny", None),
        (PAY, DB, 5432, None, "allow", "cde-to-db"),
        (CRM, ORD, 8080, None, "deny", "no-marketing-in-cde"),
        (CRM, WORLD, 80, None, "allow", "web-out"),
        (CRM, WORLD, 25, None, "violation", None),  # both ends monitor: recorded, passes
        (WORLD, ORD, 8080, None, "deny", None),
        (
            OTHER,
            Endpoint(ip="10.9.9.8", name="y", namespace="other"),
            80,
            None,
            "allow",
            None,
        ),  # unmanaged
    ],
)
def test_first_match_and_modes(src, dst, port, app, action, rule) -> None:
    v = evaluate(POLICY, src, dst, port, app=app)
    assert (v.action, v.rule) == (action, rule), v.reason


def test_discover_mode_learns_instead_of_blocking() -> None:
    text = (
        dump(POLICY)
        .replace("mode: protect", "mode: discover")
        .replace("mode: monitor", "mode: discover")
    )
    pol = parse_texts([("p.yaml", text)])
    assert evaluate(pol, CRM, ORD, 8080).action == "learn"
    assert evaluate(pol, PAY, ORD, 22).action == "learn"


def test_data_rules_come_from_both_ends() -> None:
    needs = data_needs(POLICY, CRM, ORD)
    assert (
        needs.action_for("dlp.payment_card") == "block"
        and needs.action_for("dlp.us_ssn") == "alert"
    )
    assert needs.action_for("dlp.email") is None
    assert not data_needs(POLICY, CRM, WORLD).any


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("any", ("any", 0, 65535)),
        ("8080", ("tcp", 8080, 8080)),
        ("udp/53", ("udp", 53, 53)),
        ("tcp/8000-8100", ("tcp", 8000, 8100)),
        ("tcp", ("tcp", 0, 65535)),
    ],
)
def test_ports(text, expected) -> None:
    p = parse_port(text)
    assert (p.l4, p.low, p.high) == expected


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ("spec:\n  groups:\n    - {name: a, selector: {}}\n", "p.yaml:3: spec.groups[0].selector"),
        (
            "spec:\n  groups:\n    - {name: a, selector: {namespace: x}, mode: block}\n",
            "p.yaml:3: spec.groups[0].mode",
        ),
        (
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], ports: [tcp/0]}\n",
            "out of range",
        ),
        (
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], protocols: [proto.gopher]}\n",
            "unknown application protocol",
        ),
        (
            "spec:\n  rules:\n    - {name: r, from: [nope], to: [any]}\n",
            "p.yaml:3: rule 'r' names unknown group 'nope'",
        ),
        ("spec:\n  groups:\n    - {name: a, selector: {cidrs: [10.0.0.0/33]}}\n", "not a CIDR"),
        (
            "spec:\n  groups:\n    - {name: a, selector: {cidrs: [10.0.0.0/8], namespace: x}}\n",
            "do not mix",
        ),
        (  # a name that would break out of the kernel rule's comment
            "spec:\n  rules:\n    - {name: 'x\" accept comment \"y', from: [any], to: [any]}\n",
            "p.yaml:3: spec.rules[0].name",
        ),
        ("spec: [\n", "p.yaml:2: invalid YAML"),
        ("kind: NetworkPolicy\n", "p.yaml:1: kind"),
    ],
)
def test_malformed_policy_is_rejected_whole_with_its_line(doc, fragment) -> None:
    with pytest.raises(ConfigError) as err:
        parse_texts([("p.yaml", doc)])
    assert fragment in str(err.value)


def test_policy_spread_over_files_and_documents() -> None:
    groups = "spec:\n  groups:\n    - {name: a, selector: {namespace: x}}\n---\nspec:\n  groups:\n    - {name: b, selector: {namespace: y}}\n"
    rules = "spec:\n  rules:\n    - {name: r, from: [a], to: [b], ports: [tcp/80]}\n"
    pol = parse_texts([("g.yaml", groups), ("r.yaml", rules)])
    assert [g.name for g in pol.spec.groups] == ["a", "b"] and pol.spec.rules[0].name == "r"
    assert parse_texts([("again.yaml", dump(pol))]) == pol  # export is a fixed point


def test_learned_connections_become_rules_that_allow_them_and_nothing_new() -> None:
    rows = [
        {
            "src_endpoint": {
                "ip": PAY.ip,
                "name": "payments",
                "namespace": "shop",
                "labels": dict(PAY.labels),
            },
            "dst_endpoint": {
                "ip": ORD.ip,
                "name": "orders",
                "namespace": "shop",
                "labels": dict(ORD.labels),
            },
            "port": 8080,
            "l4": "tcp",
            "app": "proto.http",
        },
        {
            "src_endpoint": {
                "ip": CRM.ip,
                "name": "crm",
                "namespace": "marketing",
                "labels": dict(CRM.labels),
            },
            "dst_endpoint": {"ip": WORLD.ip, "external": True},
            "port": 80,
            "l4": "tcp",
            "app": "proto.http",
        },
    ]
    pol = policy_from_learned(rows, mode="protect")
    assert {g.name for g in pol.spec.groups} == {
        "shop.payments",
        "shop.orders",
        "marketing.crm",
        "ext.198.51.100.10",
    }
    assert evaluate(pol, PAY, ORD, 8080, app="proto.http").action == "allow"
    assert evaluate(pol, CRM, WORLD, 80, app="proto.http").action == "allow"
    assert evaluate(pol, PAY, ORD, 8080, app="proto.redis").action == "deny"  # new kind of traffic
    assert evaluate(pol, PAY, ORD, 9999).action == "deny"
    assert evaluate(pol, CRM, ORD, 8080).action == "deny"


NETPOL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-allow-api, namespace: data}
spec:
  podSelector: {matchLabels: {app: postgres}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
          podSelector: {matchLabels: {pci: cde}}
        - ipBlock: {cidr: 198.51.100.0/24}
      ports: [{protocol: TCP, port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: orders}}
  ingress:
    - ports: [{port: http}]
    - from: [{podSelector: {}}]
      ports: [{protocol: TCP, port: 8000, endPort: 8100}]
"""


def test_networkpolicy_import_keeps_kubernetes_semantics() -> None:
    pol, warnings = import_policies(yaml.safe_load_all(NETPOL))
    assert any("named port 'http'" in w for w in warnings)
    assert evaluate(pol, PAY, DB, 5432).action == "allow"  # namespace AND pod selector
    assert (
        evaluate(pol, ORD.__class__(ip="10.77.0.30", name="z", namespace="shop"), DB, 5432).action
        == "deny"
    )
    assert evaluate(pol, WORLD, DB, 5432).action == "allow"
    assert evaluate(pol, PAY, DB, 5433).action == "deny"  # isolated: only what is listed
    assert evaluate(pol, PAY, ORD, 8050).action == "allow"
    assert (
        evaluate(pol, DB, ORD, 8050).action == "deny"
    )  # podSelector {} is the same namespace only


def test_networkpolicy_export_round_trips_the_l4_part() -> None:
    docs, warnings = export_policies(POLICY)
    assert any("no deny rules" in w for w in warnings) and any(
        "application protocols" in w for w in warnings
    )
    by_ns = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs}
    cde = by_ns[("shop", "stockade-cde")]["spec"]
    assert cde["podSelector"] == {"matchLabels": {"pci": "cde"}}
    ports = [p["port"] for rule in cde["ingress"] for p in rule.get("ports", [])]
    assert {8080, 8443, 8444} <= set(ports)
    back, _ = import_policies(docs)
    assert evaluate(back, PAY, ORD, 8443).action == "allow"
    assert evaluate(back, PAY, DB, 5432).action == "allow"
    assert evaluate(back, CRM, DB, 5432).action == "deny"


ONLY_UNEXPORTABLE_SOURCES = """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: narrow}
spec:
  groups:
    - {name: api, selector: {namespace: shop, labels: {app: orders}}, mode: protect}
    - {name: partner, selector: {dns: [partner.example.com]}}
    - {name: one-pod, selector: {namespace: shop, pods: [payments]}}
  rules:
    - {name: partner-in, from: [partner], to: [api], ports: [tcp/8443]}
    - {name: pay-in, from: [one-pod, partner], to: [api], ports: [tcp/8080]}
"""


def test_networkpolicy_export_never_widens_a_rule_whose_sources_cannot_be_peers() -> None:
    pol = parse_texts([("narrow.yaml", ONLY_UNEXPORTABLE_SOURCES)])
    docs, warnings = export_policies(pol)
    (doc,) = docs
    # an ingress item without "from" would admit every source; the rules are left out instead
    assert doc["spec"]["ingress"] == []
    assert any("'partner-in'" in w and "rule left out" in w for w in warnings)
    assert any("'pay-in'" in w and "rule left out" in w for w in warnings)
    back, _ = import_policies(docs)
    assert evaluate(back, CRM, ORD, 8443).action == "deny"


ANY_DENY = """
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
  rules:
    - {name: web-in, from: [any], to: [cde], ports: [tcp/8080]}
    - {name: nothing-else, from: [any], to: [any], action: deny}
"""


def test_a_rule_between_any_and_any_leaves_traffic_between_ungrouped_ends_alone() -> None:
    """Traffic between endpoints in no group is not managed (the kernel accepts it before any
    rule): explain must not call it denied by an any-to-any rule."""
    pol = parse_texts([("any.yaml", ANY_DENY)])
    v = evaluate(pol, OTHER, Endpoint(ip="10.9.9.8", name="y", namespace="other"), 80)
    assert (v.action, v.rule, v.mode) == ("allow", None, None), v.reason
    assert evaluate(pol, OTHER, WORLD, 443).action == "allow"
    # one end in a protect group: the rules apply
    assert evaluate(pol, OTHER, ORD, 8080).action == "allow"
    v = evaluate(pol, OTHER, ORD, 22)
    assert (v.action, v.rule) == ("deny", "nothing-else")
