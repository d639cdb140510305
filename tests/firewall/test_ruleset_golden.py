"""The compiled nftables ruleset of the example policy, pinned by a golden file (a pure function:
no root, no kernel). `pytest tests/firewall/test_ruleset_golden.py --update-golden` rewrites it
after a deliberate change; review the diff like code."""

from __future__ import annotations

from pathlib import Path

from stockade.firewall.enforce.nft import compile_ruleset
from stockade.firewall.policy.endpoints import Directory
from stockade.firewall.policy.files import load_files
from stockade.identity import Directory as Identities
from stockade.identity import Workload

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "example-policy.nft"


def _workloads() -> Identities:
    def pod(ns: str, name: str, n: int, **labels: str) -> Workload:
        return Workload(
            name=name,
            namespace=ns,
            labels=tuple(sorted(labels.items())),
            addresses=(f"10.77.0.{n}", f"fd00:77::{n:x}"),
        )

    return Identities(
        [
            pod("shop", "orders", 11, app="orders", pci="cde"),
            pod("shop", "payments", 12, app="payments", pci="cde"),
            pod("data", "db", 21, app="postgres"),
            pod("data", "cache", 22, app="redis"),
            pod("marketing", "crm", 31, app="crm"),
            Workload(name="world", external=True, addresses=("198.51.100.10",)),
        ]
    )


def test_the_example_policy_compiles_to_the_golden_ruleset(update_golden: bool) -> None:
    policy = load_files([REPO / "examples" / "firewall" / "policy.yaml"])
    ruleset = compile_ruleset(policy, Directory.from_identities(_workloads()).endpoints, {})
    if update_golden or not GOLDEN.exists():
        GOLDEN.write_text(ruleset)
    assert ruleset == GOLDEN.read_text(), (
        "the compiled ruleset changed; if on purpose, rerun with --update-golden and review the diff"
    )
    # what the golden file must say whatever its layout
    assert "table inet stockade" in ruleset and "10.77.0.11" in ruleset and "fd00:77::b" in ruleset


TWO_GROUPS = """
spec:
  groups:
    - {name: web, selector: {namespace: shop, labels: {app: web}}, mode: protect}
    - {name: api, selector: {namespace: shop, labels: {app: api}}, mode: protect}
    - name: cde
      selector: {namespace: shop, labels: {pci: cde}}
      mode: protect
      dlp: [{sensor: dlp.payment_card, action: block}]
  rules:
    - {name: web-api, from: [web], to: [api], ports: [tcp/8080]}
"""


def _rule_lines(ruleset: str, rule: str) -> list[str]:
    return [ln for ln in ruleset.splitlines() if ln.endswith(f'comment "{rule}"')]


def test_an_allow_into_a_workload_that_is_also_in_a_dlp_group_is_inspected() -> None:
    """DLP applies by every group an end is in, not only by the groups a rule names: the kernel
    must not decide web -> api alone when the api pod is also in the CDE group (its card block
    would never see the bytes)."""
    from stockade.firewall.policy.engine import Endpoint, data_needs
    from stockade.firewall.policy.files import parse_texts

    policy = parse_texts([("two.yaml", TWO_GROUPS)])
    web = Endpoint(ip="10.1.0.1", name="web", namespace="shop", labels={"app": "web"})
    api = Endpoint(ip="10.1.0.2", name="api", namespace="shop", labels={"app": "api", "pci": "cde"})
    plain = Endpoint(ip="10.1.0.3", name="api2", namespace="shop", labels={"app": "api"})
    assert data_needs(policy, web, api).action_for("dlp.payment_card") == "block"
    (line,) = _rule_lines(compile_ruleset(policy, [web, api], {}), "web-api")
    assert "goto inspecting" in line and line.count(" accept") == 0
    # the same rule with no end in a data group stays a kernel decision
    (line,) = _rule_lines(compile_ruleset(policy, [web, plain], {}), "web-api")
    assert line.endswith('accept comment "web-api"') and "inspecting" not in line


def test_an_allow_to_an_address_inside_a_dlp_cidr_group_is_inspected() -> None:
    text = """
spec:
  groups:
    - {name: app, selector: {namespace: shop}, mode: protect}
    - {name: net, selector: {cidrs: [203.0.113.0/24]}}
    - {name: partner, selector: {cidrs: [203.0.113.128/25]}, dlp: [{sensor: "dlp.*", action: block}]}
  rules:
    - {name: out, from: [app], to: [net], ports: [tcp/443]}
"""
    from stockade.firewall.policy.engine import Endpoint
    from stockade.firewall.policy.files import parse_texts

    policy = parse_texts([("cidr.yaml", text)])
    app = Endpoint(ip="10.1.0.1", name="a", namespace="shop")
    (line,) = _rule_lines(compile_ruleset(policy, [app], {}), "out")
    assert "goto inspecting" in line


def test_icmp_ports_compile_to_both_families_icmp() -> None:
    from stockade.firewall.policy.engine import Endpoint, evaluate
    from stockade.firewall.policy.files import parse_texts

    policy = parse_texts(
        [
            (
                "icmp.yaml",
                """
spec:
  groups:
    - {name: a, selector: {namespace: shop}, mode: protect}
  rules:
    - {name: ping, from: [a], to: [a], ports: [icmp, tcp/22]}
""",
            )
        ]
    )
    one, two = (Endpoint(ip=f"10.1.0.{n}", name=f"p{n}", namespace="shop") for n in (1, 2))
    lines = _rule_lines(compile_ruleset(policy, [one, two], {}), "ping")
    assert any("meta l4proto { icmp, ipv6-icmp }" in ln for ln in lines)
    assert evaluate(policy, one, two, 0, l4="icmp").action == "allow"
    assert evaluate(policy, one, two, 23).action == "deny"


def test_a_policy_of_thousands_of_groups_compiles_in_bounded_time() -> None:
    """Each group's addresses come from the workloads of its namespace or label, not from every
    workload: 3,000 groups over 3,000 pods took about 15 s of CPU before, under 3 s now (bound: 8 s)."""
    import time

    from stockade.firewall.enforce.nft import group_addresses
    from stockade.firewall.policy.engine import Endpoint
    from stockade.firewall.policy.files import parse_texts

    n = 3000
    groups = "".join(
        f"    - {{name: g{i}, selector: {{namespace: ns{i % 1500}, labels: {{app: a{i}}}}}, mode: protect}}\n"
        for i in range(n)
    )
    glob = "    - {name: every, selector: {namespace: 'ns1*'}}\n"
    rules = "".join(
        f"    - {{name: r{i}, from: [g{i}], to: [g{(i + 1) % n}], ports: [tcp/{1000 + i}]}}\n"
        for i in range(n)
    )
    t0 = time.process_time()
    policy = parse_texts([("huge.yaml", f"spec:\n  groups:\n{groups}{glob}  rules:\n{rules}")])
    pods = [
        Endpoint(ip=f"10.{i // 256}.{i % 256}.1", name=f"p{i}", namespace=f"ns{i % 1500}",
                 labels={"app": f"a{i}"})
        for i in range(n)
    ]  # fmt: skip
    ruleset = compile_ruleset(policy, pods, {})
    assert time.process_time() - t0 < 8.0
    assert "10.0.1.1" in ruleset and 'comment "r2999"' in ruleset
    # the same addresses as testing every workload against the group
    for g in (policy.spec.groups[7], policy.spec.groups[-1]):
        assert f"{{ {', '.join(group_addresses(g, pods, {})[4])} }}" in ruleset
    assert (
        len(group_addresses(policy.spec.groups[-1], pods, {})[4]) == 1222
    )  # ns1, ns10-19, ns100-199, ns1000-1499: two pods each


def test_a_rule_on_every_port_matches_every_ip_protocol_in_the_kernel() -> None:
    """``ports: any`` covers ICMP and every other IP protocol (PortRange.covers); compiled to TCP
    and UDP only, a deny rule let ping skip past it in the kernel to a later allow of ICMP,
    decided there: the engine denies it (first match), the kernel let it through."""
    from stockade.firewall.policy.engine import Endpoint, evaluate
    from stockade.firewall.policy.files import parse_texts

    policy = parse_texts(
        [
            (
                "any.yaml",
                """
spec:
  groups:
    - {name: crm, selector: {namespace: marketing}, mode: protect}
    - {name: cde, selector: {namespace: shop}, mode: protect}
  rules:
    - {name: no-crm, from: [crm], to: [cde], action: deny}
    - {name: ping, from: [crm], to: [cde], ports: [icmp]}
""",
            )
        ]
    )
    crm = Endpoint(ip="10.1.0.1", name="crm", namespace="marketing")
    orders = Endpoint(ip="10.2.0.1", name="orders", namespace="shop")
    assert evaluate(policy, crm, orders, 0, l4="icmp").rule == "no-crm"
    ruleset = compile_ruleset(policy, [crm, orders], {})
    deny = _rule_lines(ruleset, "no-crm")
    # one line (IPv4 addresses only), on every protocol, before the ICMP allow
    assert len(deny) == 1 and not any("l4proto" in ln or "dport" in ln for ln in deny), deny
    assert ruleset.index('comment "no-crm"') < ruleset.index('comment "ping"')
