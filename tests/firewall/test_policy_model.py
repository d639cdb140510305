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
        ("icmp", ("icmp", 0, 65535)),
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
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], ports: [icmp/8]}\n",
            "icmp has no ports",
        ),
        (  # a range with no end was read as its start
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], ports: [tcp/80-]}\n",
            "p.yaml:3: spec.rules[0].ports: port 'tcp/80-' is not a number or range",
        ),
        (
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], ports: [/80]}\n",
            "protocol missing",
        ),
        (
            "spec:\n  rules:\n    - {name: r, from: [any], to: [any], ports: [true]}\n",
            "spec.rules[0].ports[0]",
        ),
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


def _np(name: str, ns: str, spec: str) -> str:
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n"
    )


def _import(*docs: str):
    return import_policies([d for d in yaml.safe_load_all("".join(docs)) if d])


API = Endpoint(ip="10.77.1.1", name="api", namespace="shop", labels={"app": "api", "tier": "be"})
WEB = Endpoint(ip="10.77.1.2", name="web", namespace="shop", labels={"app": "web", "tier": "fe"})
MON = Endpoint(ip="10.77.1.3", name="prom", namespace="monitoring", labels={"app": "prom"})
DNS = Endpoint(ip="10.77.1.53", name="coredns", namespace="kube-system", labels={"k8s-app": "dns"})


def test_networkpolicy_ipblock_except_is_cut_out_of_the_cidr() -> None:
    pol, _ = _import(
        _np(
            "partners",
            "shop",
            "  podSelector: {matchLabels: {app: api}}\n"
            "  ingress:\n"
            "    - from: [{ipBlock: {cidr: 172.16.0.0/12, except: [172.17.0.0/16, 172.18.5.0/24]}}]\n"
            "      ports: [{port: 443}]\n",
        )
    )
    assert evaluate(pol, Endpoint(ip="172.16.9.9", external=True), API, 443).action == "allow"
    assert evaluate(pol, Endpoint(ip="172.18.6.1", external=True), API, 443).action == "allow"
    for excepted in ("172.17.0.1", "172.17.255.254", "172.18.5.7"):
        v = evaluate(pol, Endpoint(ip=excepted, external=True), API, 443)
        assert v.action == "deny", excepted


def test_networkpolicy_peers_and_selectors_as_kubernetes_reads_them() -> None:
    one_peer = "  - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n        podSelector: {matchLabels: {app: web}}\n"
    pol, _ = _import(
        _np(
            "and",
            "shop",
            "  podSelector: {}\n  ingress:\n    - from:\n    "
            + one_peer
            + "      ports: [{port: 9090}]\n",
        )
    )
    # one element: namespace AND pod; podSelector {} as the target: every pod of the namespace
    assert evaluate(pol, MON, API, 9090).action == "deny"  # prom is no "web"
    assert evaluate(pol, MON, WEB, 9090).action == "deny"  # web is not in monitoring
    pol, _ = _import(
        _np(
            "or",
            "shop",
            "  podSelector: {}\n  ingress:\n    - from:\n"
            "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n"
            "        - podSelector: {matchLabels: {app: web}}\n"
            "      ports: [{port: 9090}]\n",
        )
    )
    assert evaluate(pol, MON, API, 9090).action == "allow"  # any pod of monitoring
    assert evaluate(pol, WEB, API, 9090).action == "allow"  # web of the policy's namespace
    assert evaluate(pol, DNS, API, 9090).action == "deny"


def test_networkpolicy_namespace_labels_that_cannot_be_matched_never_widen_a_peer() -> None:
    pol, warnings = _import(
        _np(
            "team",
            "shop",
            "  podSelector: {matchLabels: {app: api}}\n  ingress:\n"
            "    - from: [{namespaceSelector: {matchLabels: {team: ops}}}]\n",
        )
    )
    assert any("peer left out" in w for w in warnings)
    # before: every namespace was admitted; now nothing this element named is
    assert evaluate(pol, MON, API, 80).action == "deny"


def test_networkpolicy_match_expressions_select_as_kubernetes_does() -> None:
    pol, warnings = _import(
        _np(
            "expr",
            "shop",
            "  podSelector: {matchExpressions: [{key: tier, operator: In, values: [be]}]}\n"
            "  ingress:\n"
            "    - from: [{podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [be]},"
            " {key: app, operator: Exists}]}}]\n"
            "      ports: [{port: 8080}]\n",
        )
    )
    assert warnings == []
    assert evaluate(pol, WEB, API, 8080).action == "allow"  # tier fe, has app
    bare = Endpoint(ip="10.77.1.9", name="bare", namespace="shop", labels={})
    assert evaluate(pol, bare, API, 8080).action == "deny"  # NotIn holds, Exists does not
    assert evaluate(pol, API, API, 8080).action == "deny"  # tier be
    # web (tier fe) is not selected by the policy: its ingress stays open
    assert evaluate(pol, bare, WEB, 22).action == "allow"


def test_networkpolicy_isolates_only_the_directions_its_types_name() -> None:
    ingress_only = _np(
        "db-in",
        "shop",
        "  podSelector: {matchLabels: {app: api}}\n"
        "  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]\n",
    )
    pol, _ = _import(ingress_only)
    assert evaluate(pol, WEB, API, 5432).action == "allow"
    assert evaluate(pol, MON, API, 5432).action == "deny"
    # policyTypes inferred as [Ingress]: the api pods' own connections are not isolated
    assert evaluate(pol, API, DNS, 53, l4="udp").action == "allow"
    assert evaluate(pol, API, WORLD, 443).action == "allow"
    dns_only = _np(
        "web-out",
        "shop",
        "  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n"
        "  egress: [{ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]}]\n",
    )
    pol, _ = _import(dns_only)
    assert evaluate(pol, WEB, DNS, 53, l4="udp").action == "allow"
    assert evaluate(pol, WEB, DNS, 53).action == "allow"
    assert evaluate(pol, WEB, WORLD, 443).action == "deny"
    assert evaluate(pol, MON, WEB, 80).action == "allow"  # Egress only: ingress stays open
    # both together: web may only resolve names, api admits web on 5432 -> both ends must agree
    pol, _ = _import(ingress_only, dns_only)
    assert evaluate(pol, API, WORLD, 443).action == "allow"
    assert evaluate(pol, MON, WEB, 80).action == "allow"
    assert evaluate(pol, WEB, DNS, 53, l4="udp").action == "allow"


def test_networkpolicy_an_open_direction_never_opens_another_policy_s_isolated_pods() -> None:
    pol, _ = _import(
        _np(
            "api-in",
            "shop",
            "  podSelector: {matchLabels: {app: api}}\n"
            "  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]\n",
        ),
        _np("mon-in", "monitoring", "  podSelector: {}\n  ingress: []\n"),
    )
    # api's egress is open, but monitoring admits nobody
    assert evaluate(pol, API, MON, 9090).action == "deny"
    assert evaluate(pol, API, DNS, 53, l4="udp").action == "allow"


def test_networkpolicy_label_values_that_slug_alike_stay_two_groups() -> None:
    pol, _ = _import(
        _np(
            "a",
            "shop",
            "  podSelector: {matchLabels: {app: web_1}}\n  ingress: [{from: [{podSelector: {}}]}]\n",
        ),
        _np("b", "shop", "  podSelector: {matchLabels: {app: web-1}}\n  ingress: []\n"),
    )
    one = Endpoint(ip="10.77.1.10", name="w1", namespace="shop", labels={"app": "web_1"})
    dash = Endpoint(ip="10.77.1.11", name="w2", namespace="shop", labels={"app": "web-1"})
    assert evaluate(pol, API, one, 80).action == "allow"
    assert evaluate(pol, API, dash, 80).action == "deny"  # b admits nobody
    assert len({g.name for g in pol.spec.groups}) == len(pol.spec.groups)


def test_networkpolicy_named_ports_and_sctp_narrow_a_rule_and_long_names_stay_unique() -> None:
    long = "allow-ingress-from-the-monitoring-namespace-to-every-exporter-of-this-team"
    pol, warnings = _import(
        _np(
            long + "-a",
            "shop",
            "  podSelector: {matchLabels: {app: api}}\n"
            "  ingress: [{ports: [{port: 8080}, {port: metrics}, {protocol: SCTP, port: 9}]}]\n",
        ),
        _np(
            long + "-b",
            "shop",
            "  podSelector: {matchLabels: {app: api}}\n  ingress: [{ports: [{port: 8081}]}]\n",
        ),
    )
    assert any("named port 'metrics'" in w for w in warnings)
    assert any("SCTP" in w for w in warnings)
    assert evaluate(pol, MON, API, 8080).action == "allow"  # kept, beside the named one
    assert evaluate(pol, MON, API, 8081).action == "allow"
    assert evaluate(pol, MON, API, 9090).action == "deny"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("  podSelector: {}\n  ingress: [{ports: [{port: 70000}]}]\n", "out of range"),
        ("  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 70}]}]\n", "out of range"),
        ("  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n", "ipBlock"),
        (
            "  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]\n",
            "not inside",
        ),
        (
            "  podSelector: {}\n  ingress: [{from: [{podSelector: {matchExpressions: [{key: a, operator: In}]}}]}]\n",
            "needs values",
        ),
        ("  podSelector: []\n", "mapping"),
        ("  podSelector: {}\n  ingress: 7\n", "must be a list"),
        ("  podSelector: {}\n  policyTypes: [Sideways]\n", "policyTypes"),
    ],
)
def test_networkpolicy_malformed_is_one_line_error(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        _import(_np("bad", "shop", spec))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_networkpolicy_export_keeps_match_expressions() -> None:
    pol, _ = _import(
        _np(
            "expr",
            "shop",
            "  podSelector: {matchExpressions: [{key: tier, operator: In, values: [be]}]}\n"
            "  ingress: [{from: [{podSelector: {matchExpressions: [{key: app, operator: Exists}]}}]}]\n",
        )
    )
    docs, _ = export_policies(pol)
    (doc,) = [d for d in docs if "'tier'" in str(d["spec"]["podSelector"])]
    # the import's closing "not isolated" allow comes after its deny: not exported into the group
    assert all("from" in item for item in doc["spec"]["ingress"]), doc
    assert doc["spec"]["podSelector"] == {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["be"]}]
    }
    back, _ = import_policies(docs)
    assert evaluate(back, WEB, API, 8080).action == "allow"
    assert (
        evaluate(back, Endpoint(ip="10.77.1.9", name="b", namespace="shop"), API, 80).action
        == "deny"
    )


def test_a_port_written_as_a_yaml_number_is_the_documented_tcp_port() -> None:
    pol = parse_texts(
        [
            (
                "n.yaml",
                "spec:\n  groups:\n    - {name: cde, selector: {namespace: shop}, mode: protect}\n"
                "  rules:\n    - {name: web, from: [any], to: [cde], ports: [8080, udp/53]}\n",
            )
        ]
    )
    assert evaluate(pol, CRM, ORD, 8080).action == "allow"
    assert evaluate(pol, CRM, ORD, 8080, l4="udp").action == "deny"
    assert parse_texts([("again.yaml", dump(pol))]) == pol


DENY_ALL = _np("deny-all", "shop", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n")
API_FROM_WEB = _np(
    "api-in",
    "shop",
    "  podSelector: {matchLabels: {app: api}}\n"
    "  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]\n",
)
WEB_TO_API = _np(
    "web-out",
    "shop",
    "  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n"
    "  egress:\n"
    "    - to: [{podSelector: {matchLabels: {tier: be}}}]\n"
    "      ports: [{port: 8000, endPort: 9000}]\n"
    "    - ports: [{protocol: UDP, port: 53}]\n",
)


def test_networkpolicy_needs_both_ends_to_admit_a_connection() -> None:
    """Kubernetes allows a connection when the client's egress and the server's ingress both
    admit it: with a namespace denied both ways, an ingress allow alone is not enough."""
    pol, _ = _import(DENY_ALL, API_FROM_WEB)
    assert evaluate(pol, WEB, API, 8080).action == "deny"  # web's egress admits nothing
    pol, _ = _import(DENY_ALL, API_FROM_WEB, WEB_TO_API)
    assert evaluate(pol, WEB, API, 8080).action == "allow"  # both admit 8080
    assert evaluate(pol, WEB, API, 8443).action == "deny"  # egress admits it, ingress does not
    assert evaluate(pol, WEB, API, 80).action == "deny"
    assert evaluate(pol, WEB, DNS, 53, l4="udp").action == "allow"  # DNS is not isolated
    assert evaluate(pol, WEB, DNS, 53).action == "deny"  # only UDP
    assert evaluate(pol, API, WEB, 8080).action == "deny"  # api's egress: denied by deny-all
    assert evaluate(pol, MON, API, 8080).action == "deny"  # not web
    other = Endpoint(ip="10.77.1.77", name="x", namespace="other", labels={"tier": "be"})
    # a podSelector alone is the policy's own namespace
    assert evaluate(pol, WEB, other, 8500).action == "deny"


def _row(src: Endpoint, dst: Endpoint, port: int, app: str = "proto.http") -> dict:
    def ep(e: Endpoint) -> dict:
        return {"ip": e.ip, "name": e.name, "namespace": e.namespace, "labels": dict(e.labels)}

    return {"src_endpoint": ep(src), "dst_endpoint": ep(dst), "port": port, "l4": "tcp", "app": app}


def test_learned_groups_never_take_a_name_another_selector_has() -> None:
    """A base group named like a learned endpoint's auto group (shop.web) but selecting other
    pods must not receive the learned rule: that would allow its pods what was never seen and
    leave the learned pod blocked once in protect."""
    base = parse_texts(
        [
            (
                "base.yaml",
                "spec:\n  groups:\n"
                "    - {name: shop.web, selector: {namespace: shop, labels: {tier: web}}}\n",
            )
        ]
    )
    web = Endpoint(ip="10.77.2.1", name="web-1", namespace="shop", labels={"app": "web"})
    other = Endpoint(ip="10.77.2.2", name="front", namespace="shop", labels={"tier": "web"})
    pol = policy_from_learned([_row(web, ORD, 8080)], base=base, mode="protect")
    assert evaluate(pol, web, ORD, 8080, app="proto.http").action == "allow"
    assert evaluate(pol, other, ORD, 8080, app="proto.http").action == "deny"
    # learning again on top of the result adds nothing
    again = policy_from_learned([_row(web, ORD, 8080)], base=pol, mode="protect")
    assert len(again.spec.rules) == len(pol.spec.rules) == 1


def test_learned_rules_whose_names_are_cut_alike_are_both_kept() -> None:
    ns = "a-namespace-with-a-rather-long-name-for-its-team"
    one = Endpoint(ip="10.77.3.1", name="p1", namespace=ns, labels={"app": "service-one"})
    two = Endpoint(ip="10.77.3.2", name="p2", namespace=ns, labels={"app": "service-two"})
    pol = policy_from_learned([_row(one, ORD, 8080), _row(two, ORD, 8080)], mode="protect")
    assert evaluate(pol, one, ORD, 8080, app="proto.http").action == "allow"
    assert evaluate(pol, two, ORD, 8080, app="proto.http").action == "allow"


MODES = """
spec:
  groups:
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
    - {name: crm, selector: {namespace: marketing}, mode: monitor}
    - {name: lab, selector: {namespace: data}, mode: discover}
  rules:
    - {name: cde-api, from: [cde], to: [cde], ports: [tcp/8080]}
    - {name: crm-web, from: [cde], to: [crm], ports: [tcp/80]}
    - {name: lab-db, from: [cde], to: [lab], ports: [tcp/5432]}
"""


def test_networkpolicy_export_never_isolates_a_group_that_blocks_nothing() -> None:
    """Monitor and discover groups let everything pass; a NetworkPolicy for them (exported before
    as soon as they had an allow rule) isolated their pods: the CRM's other callers were cut off."""
    import kubernetes_validate

    pol = parse_texts([("modes.yaml", MODES)])
    assert evaluate(pol, DB, CRM, 9000).action == "violation"  # monitor: passes, recorded
    docs, warnings = export_policies(pol)
    assert [d["metadata"]["name"] for d in docs] == ["stockade-cde"]
    for group, mode in (("crm", "monitor"), ("lab", "discover")):
        assert any(f"group {group!r} is in {mode} mode" in w for w in warnings), warnings
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    back, _ = import_policies(docs)
    for src, dst, port in ((DB, CRM, 9000), (OTHER, CRM, 22), (CRM, DB, 5432), (OTHER, DB, 1)):
        assert evaluate(pol, src, dst, port).passes
        assert evaluate(back, src, dst, port).passes, (src.name, dst.name, port)
    assert evaluate(back, CRM, ORD, 8080).action == "deny"  # the protect group stays isolated
    # once it is meant to block, it is exported
    strict = parse_texts([("modes.yaml", MODES.replace("mode: monitor", "mode: protect"))])
    assert "stockade-crm" in [d["metadata"]["name"] for d in export_policies(strict)[0]]


OVERLAP = """
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: overlap}
spec:
  groups:
    - {name: shop, selector: {namespace: shop}, mode: monitor}
    - {name: cde, selector: {namespace: shop, labels: {pci: cde}}, mode: protect}
    - {name: crm, selector: {namespace: marketing}, mode: monitor}
  rules:
    - {name: cde-api, from: [cde], to: [cde], ports: [tcp/8080]}
    - {name: web, from: [any], to: [shop], ports: [tcp/80]}
"""


def test_networkpolicy_export_keeps_what_a_monitor_group_admits_into_protect_pods() -> None:
    """A pod in a protect group and in a monitor group gets, in Stockade, what the rules into
    either let in. Exported, the monitor group has no NetworkPolicy of its own: the pods of both
    get one with the rules into either (before, port 80 into the card pods was cut off)."""
    import kubernetes_validate

    pol = parse_texts([("overlap.yaml", OVERLAP)])
    docs, _ = export_policies(pol)
    assert sorted(d["metadata"]["name"] for d in docs) == ["stockade-cde", "stockade-cde-shop"]
    both = next(d for d in docs if d["metadata"]["name"] == "stockade-cde-shop")
    assert both["spec"]["podSelector"] == {"matchLabels": {"pci": "cde"}}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    back, _ = import_policies(docs)
    web = Endpoint(ip="10.77.2.1", name="web", namespace="shop", labels={"app": "web"})
    for src, dst, port in ((OTHER, PAY, 80), (CRM, PAY, 80), (ORD, PAY, 8080), (OTHER, web, 22)):
        assert evaluate(pol, src, dst, port).passes, (src.name, dst.name, port)
        assert evaluate(back, src, dst, port).passes, (src.name, dst.name, port)
    for src, dst, port in ((OTHER, PAY, 8080), (CRM, ORD, 22)):
        assert evaluate(pol, src, dst, port).action == "deny"
        assert evaluate(back, src, dst, port).action == "deny", (src.name, dst.name, port)
