"""What the compiled ``classify`` chain lets through in the kernel, read back from the ruleset
text, against the engine: a connection the kernel allows there and then never reaches the
enforcer, so the engine must allow it too, with nothing to look for in its bytes. Random
policies and endpoints (those of test_policy_index), every IP protocol and the port edges."""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass

import pytest

from stockade.firewall.enforce.nft import compile_ruleset
from stockade.firewall.policy.engine import Endpoint, data_needs, evaluate
from tests.firewall.test_policy_index import IPS, LABELS, NAMESPACES, _policy

_SET = re.compile(
    r"^  set (\S+) \{ type \S+; flags interval; auto-merge;(?: elements = \{ (.*) \};)? \}$"
)
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132}


@dataclass(frozen=True)
class _Line:
    family: int  # 4, 6, or 0: both
    src: tuple[str, bool] | None  # (set, negated)
    dst: tuple[str, bool] | None
    l4: frozenset[int] | None  # IP protocols, None: any
    ports: list[tuple[int, int]] | None  # destination port spans, None: any
    verdict: str  # allow, inspect, recorded


def _parse(ruleset: str) -> tuple[dict[str, list], list[_Line]]:
    sets: dict[str, list] = {}
    lines: list[_Line] = []
    in_classify = False
    for text in ruleset.splitlines():
        m = _SET.match(text)
        if m:
            elems = m.group(2).split(", ") if m.group(2) else []
            sets[m.group(1)] = [ipaddress.ip_network(e, strict=False) for e in elems]
            continue
        if text.strip() == "chain classify {":
            in_classify = True
            continue
        if in_classify and text.strip() == "}":
            break
        if not in_classify:
            continue
        body = text.strip()
        family = (
            6
            if "nfproto ipv6" in body or body.startswith("ip6 ")
            else 4
            if "nfproto ipv4" in body or body.startswith("ip ")
            else 0  # both
        )
        ends: list[tuple[str, bool] | None] = []
        for side in ("saddr", "daddr"):
            m2 = re.search(rf"ip6? {side} (!= )?@(\S+)", body)
            ends.append((m2.group(2), bool(m2.group(1))) if m2 else None)
        l4: frozenset[int] | None = None
        ports: list[tuple[int, int]] | None = None
        m3 = re.search(r"(tcp|udp) dport \{ ([^}]*) \}", body)
        if m3:
            l4 = frozenset({_PROTO[m3.group(1)]})
            ports = []
            for span in m3.group(2).split(", "):
                low, _, high = span.partition("-")
                ports.append((int(low), int(high or low)))
        elif "meta l4proto { icmp, ipv6-icmp }" in body:
            l4 = frozenset({1, 58})
        elif m4 := re.search(r"meta l4proto (tcp|udp)\b", body):
            l4 = frozenset({_PROTO[m4.group(1)]})
        if "goto inspecting" in body:
            verdict = "inspect"
        elif "meta mark set" in body:
            verdict = "recorded"
        else:
            verdict = "allow"
        lines.append(_Line(family, ends[0], ends[1], l4, ports, verdict))
    return sets, lines


def _kernel(
    sets: dict[str, list], lines: list[_Line], src: str, dst: str, proto: int, port: int
) -> str:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    for line in lines:
        if line.family not in (0, s.version):
            continue
        ok = True
        for addr, end in ((s, line.src), (d, line.dst)):
            if end is not None:
                inside = any(addr in net for net in sets[end[0]])
                ok = ok and (inside != end[1])
        if not ok:
            continue
        if line.l4 is not None:
            wanted = line.l4 | ({58} if 1 in line.l4 else set())
            if proto not in wanted:
                continue
        if line.ports is not None and not any(lo <= port <= hi for lo, hi in line.ports):
            continue
        return line.verdict
    raise AssertionError("no line matched: the implicit rule matches everything")


def _pods(rnd: random.Random) -> list[Endpoint]:
    out = []
    for i, ip in enumerate(IPS):
        if ip.startswith("::ffff:") or rnd.random() < 0.4:
            continue  # an external address
        out.append(
            Endpoint(ip=ip, name=f"p-{i}", namespace=rnd.choice(NAMESPACES),
                     labels=dict(rnd.sample(LABELS, rnd.randrange(3))))
        )  # fmt: skip
    return out


@pytest.mark.parametrize("seed", [*range(12), 48, 86, 90, 93])  # 48-93 failed before 7067cde
def test_what_the_kernel_allows_alone_the_engine_allows(seed: int) -> None:
    rnd = random.Random(seed)
    policy = _policy(
        rnd, groups=rnd.choice((5, 20, 40)), rules=rnd.choice((5, 20, 60)), data=seed % 3 * 0.1
    )
    pods = _pods(rnd)
    resolved = {"db.example.com": frozenset({"10.1.2.3", "fd00:1::5"})}
    sets, lines = _parse(compile_ruleset(policy, pods, resolved))
    by_ip = {p.ip: p for p in pods}
    ips = [ip for ip in IPS if not ip.startswith("::ffff:")]
    for _ in range(600):
        a, b = rnd.choice(ips), rnd.choice(ips)
        if ipaddress.ip_address(a).version != ipaddress.ip_address(b).version:
            continue
        src = by_ip.get(a, Endpoint(ip=a, external=True))
        dst = by_ip.get(b, Endpoint(ip=b, external=True))
        l4 = rnd.choice(("tcp", "udp", "icmp", "sctp"))
        port = rnd.choice((0, 1, 53, 80, 1024, 8050, 65535)) if l4 in ("tcp", "udp") else 0
        proto = _PROTO[l4] if (l4 != "icmp" or ":" not in a) else 58
        if _kernel(sets, lines, a, b, proto, port) != "allow":
            continue  # the enforcer judges it with the engine itself
        verdict = evaluate(policy, src, dst, port, l4=l4, resolved=resolved)
        assert verdict.action == "allow", (a, b, l4, port, verdict)
        if verdict.mode is not None:
            assert not data_needs(policy, src, dst, resolved).any, (a, b, verdict)
