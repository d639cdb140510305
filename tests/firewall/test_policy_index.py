"""The policy index (engine._Index) against the linear scans it replaces (``exhaustive=True``):
the same groups, verdicts, awaited protocols and data needs on random policies and endpoints,
drawn from small pools so that selectors, overlapping CIDRs and rules meet often."""

from __future__ import annotations

import random
from typing import Any

import pytest

from stockade.firewall.policy.engine import (
    Endpoint,
    awaited_protocols,
    data_needs,
    evaluate,
    groups_of,
)
from stockade.firewall.policy.model import Policy

NAMESPACES = ["shop", "data", "web", "kube-system"]
LABELS = [("app", "a"), ("app", "b"), ("tier", "x"), ("pci", "cde")]
NETS4 = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "0.0.0.0/0", "10.1.2.0/31"]
NETS6 = ["fd00::/8", "fd00:1::/32", "fd00:1::5/128", "::/0", "::ffff:0:0/96"]
IPS = ["10.1.2.3", "10.1.2.1", "10.1.9.9", "10.200.0.1", "192.0.2.7", "fd00:1::5",
       "fd00:1::6", "fd01::1", "::ffff:10.1.2.3", "2001:db8::1"]  # fmt: skip
PROTOCOLS = ["proto.http", "proto.tls", "proto.redis", "proto.unknown"]
PORTS = ["any", "tcp", "udp", "icmp", "tcp/80", "tcp/1-1024", "tcp/65535", "udp/53",
         "tcp/8000-8100", "udp/1-65535", "80", "tcp/1"]  # fmt: skip


def _selector(rnd: random.Random) -> dict[str, Any]:
    kind = rnd.randrange(7)
    if kind == 0:
        return {"cidrs": rnd.sample(NETS4 + NETS6, rnd.choice((1, 2)))}
    if kind == 1:
        return {"dns": ["db.example.com"]}
    sel: dict[str, Any] = {}
    if kind in (2, 3, 4):
        sel["namespace"] = rnd.choice([*NAMESPACES, "sh*", "*"])
    if kind in (3, 5) or not sel:
        k, v = rnd.choice(LABELS)
        sel["labels"] = {k: v}
    if kind == 4:
        sel["pods"] = [rnd.choice(("p*", "q-1", "*"))]
    if kind == 6:
        k, v = rnd.choice(LABELS)
        sel["expressions"] = [{"key": k, "operator": rnd.choice(("NotIn", "In")), "values": [v]}]
    return sel


def _policy(rnd: random.Random, groups: int, rules: int, data: float = 0.5) -> Policy:
    """``data``: about how many groups have DLP or TLS requirements."""
    gs = [
        {
            "name": f"g{i}",
            "selector": _selector(rnd),
            "mode": rnd.choice(("discover", "monitor", "protect")),
            "dlp": [{"sensor": "dlp.payment_card", "action": "block"}]
            if rnd.random() < data / 5
            else [],
            "requireTLS": rnd.choice(("inbound", "outbound")) if rnd.random() < data else "none",
        }
        for i in range(groups)
    ]
    names = [g["name"] for g in gs] + ["any"]
    rs = []
    for i in range(rules):
        rule: dict[str, Any] = {
            "name": f"r{i}",
            "from": rnd.sample(names, rnd.choice((1, 2))),
            "to": rnd.sample(names, rnd.choice((1, 2))),
            "ports": rnd.sample(PORTS, rnd.choice((1, 2))),
            "action": rnd.choice(("allow", "allow", "deny")),
        }
        if rnd.random() < 0.3:
            rule["protocols"] = rnd.sample(PROTOCOLS, rnd.choice((1, 2)))
        rs.append(rule)
    return Policy.model_validate({"spec": {"groups": gs, "rules": rs}})


def _endpoint(rnd: random.Random) -> Endpoint:
    ip = rnd.choice(IPS)
    if rnd.random() < 0.35:
        return Endpoint(ip=ip, external=True)
    labels = dict(rnd.sample(LABELS, rnd.randrange(3)))
    return Endpoint(
        ip=ip, name=rnd.choice(("p-1", "q-1", "web")), namespace=rnd.choice(NAMESPACES),
        labels=labels,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_the_index_answers_as_the_linear_scans(seed: int) -> None:
    rnd = random.Random(seed)
    policy = _policy(rnd, groups=rnd.choice((5, 30, 80)), rules=rnd.choice((5, 40, 120)))
    resolved = {"db.example.com": frozenset({"10.1.2.3", "fd00:1::5"})}
    for _ in range(300):
        src, dst = _endpoint(rnd), _endpoint(rnd)
        port = rnd.choice((0, 1, 53, 80, 1024, 1025, 8050, 65535))
        l4 = rnd.choice(("tcp", "udp", "icmp", "sctp"))
        app = rnd.choice((None, *PROTOCOLS))
        for ep in (src, dst):
            assert groups_of(policy, ep, resolved) == groups_of(
                policy, ep, resolved, exhaustive=True
            )
        kw: dict[str, Any] = {"l4": l4, "resolved": resolved}
        assert evaluate(policy, src, dst, port, app=app, **kw) == evaluate(
            policy, src, dst, port, app=app, exhaustive=True, **kw
        )
        assert awaited_protocols(policy, src, dst, port, **kw) == awaited_protocols(
            policy, src, dst, port, exhaustive=True, **kw
        )
        assert data_needs(policy, src, dst, resolved) == data_needs(
            policy, src, dst, resolved, exhaustive=True
        )


def test_a_new_policy_object_gets_its_own_index() -> None:
    """The index is kept per policy object: a policy applied later (same size, other rules) is
    never judged with the previous one's index."""
    a = Policy.model_validate(
        {"spec": {"groups": [{"name": "g", "selector": {"namespace": "shop"}, "mode": "protect"}],
                  "rules": [{"name": "r", "from": ["g"], "to": ["g"], "ports": ["tcp/80"]}]}}
    )  # fmt: skip
    b = Policy.model_validate(
        {"spec": {"groups": [{"name": "g", "selector": {"namespace": "web"}, "mode": "protect"}],
                  "rules": [{"name": "r", "from": ["g"], "to": ["g"], "ports": ["tcp/81"]}]}}
    )  # fmt: skip
    shop = Endpoint(ip="10.0.0.1", name="p", namespace="shop")
    web = Endpoint(ip="10.0.0.2", name="p", namespace="web")
    assert evaluate(a, shop, shop, 80).action == "allow"
    assert evaluate(b, shop, shop, 80).action == "allow"  # in no group of b: unmanaged
    assert evaluate(b, web, web, 80).action == "deny"
    assert evaluate(b, web, web, 81).action == "allow"


def test_a_workload_address_written_otherwise_is_in_its_dns_group_as_in_the_kernel() -> None:
    """The kernel set of a DNS group holds the resolved addresses; the engine compared the
    workload's address as written ("fd00:0001::5") with the resolved text ("fd00:1::5")."""
    from stockade.firewall.enforce.nft import group_addresses
    from stockade.firewall.policy.endpoints import Directory

    policy = Policy.model_validate(
        {"spec": {"groups": [{"name": "db", "selector": {"dns": ["db.example.com"]},
                              "mode": "protect"}]}}
    )  # fmt: skip
    resolved = {"db.example.com": frozenset({"fd00:1::5"})}
    directory = Directory([Endpoint(ip="fd00:0001:0::5", name="db", namespace="data")])
    (group,) = policy.spec.groups
    assert group_addresses(group, directory.endpoints, resolved)[6] == ["fd00:1::5"]
    ep = directory.by_ip("fd00:1::5")
    assert [g.name for g in groups_of(policy, ep, resolved)] == ["db"]
