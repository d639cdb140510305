"""Deciding one connection: which groups each end is in, which rule matches, what the mode says.

Rules are checked in order; the first whose groups, ports and application protocols match decides.
A rule with ``protocols`` cannot be decided before the protocol is known: ``evaluate`` then answers
``inspect`` so the enforcer looks at the first bytes and asks again. After the last rule an implicit
rule applies, set by the most restrictive mode of the groups both ends are in:
protect = deny, monitor = allow and record a violation, discover = allow and learn. Explicit deny
rules block only in protect mode; in monitor mode they record a violation, in discover they learn.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from stockade.firewall.policy.model import ANY, MODE_RANK, Group, Policy, Rule, Selector

Resolved = Mapping[str, frozenset[str]]  # DNS name -> addresses, resolved on the node


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One end of a connection: a pod (name, namespace, labels) or an external address."""

    ip: str
    name: str = ""
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    external: bool = False

    def display(self) -> str:
        if self.external or not self.name:
            return self.ip
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    action: str  # "allow", "deny", "violation", "learn", "inspect"
    rule: str | None  # the rule that decided, or None for the implicit rule / unmanaged traffic
    mode: str | None  # effective mode, None when neither end is in a group
    reason: str
    src_groups: tuple[str, ...] = ()
    dst_groups: tuple[str, ...] = ()

    @property
    def blocks(self) -> bool:
        return self.action == "deny"

    @property
    def passes(self) -> bool:
        return self.action in ("allow", "violation", "learn")


@lru_cache(maxsize=65536)
def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


@lru_cache(maxsize=65536)
def _addr(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(ip)


def selects(sel: Selector, ep: Endpoint, resolved: Resolved) -> bool:
    if sel.cidrs or sel.dns:
        addr = _addr(ep.ip)
        if sel.cidrs and not any(addr in _net(c) for c in sel.cidrs):
            return False
        return not sel.dns or any(ep.ip in resolved.get(name, frozenset()) for name in sel.dns)
    if ep.external:
        return False
    if sel.namespace is not None and not fnmatch.fnmatchcase(ep.namespace, sel.namespace):
        return False
    if any(ep.labels.get(k) != v for k, v in sel.labels.items()):
        return False
    if not all(e.holds(ep.labels) for e in sel.expressions):
        return False
    return not sel.pods or any(fnmatch.fnmatchcase(ep.name, p) for p in sel.pods)


def groups_of(policy: Policy, ep: Endpoint, resolved: Resolved) -> tuple[Group, ...]:
    return tuple(g for g in policy.spec.groups if selects(g.selector, ep, resolved))


def _side(names: list[str], groups: tuple[Group, ...]) -> bool:
    return ANY in names or any(g.name in names for g in groups)


def _l4_port_match(rule: Rule, l4: str, port: int) -> bool:
    return any(r.covers(l4, port) for r in rule.port_ranges())


def effective_mode(src: tuple[Group, ...], dst: tuple[Group, ...]) -> str | None:
    modes = [g.mode for g in (*src, *dst)]
    return max(modes, key=MODE_RANK.__getitem__) if modes else None


def evaluate(
    policy: Policy,
    src: Endpoint,
    dst: Endpoint,
    port: int,
    *,
    l4: str = "tcp",
    app: str | None = None,
    resolved: Resolved | None = None,
) -> Verdict:
    """The verdict for a connection from ``src`` to ``dst:port`` (``app``: detected protocol)."""
    res = resolved or {}
    sg, dg = groups_of(policy, src, res), groups_of(policy, dst, res)
    names = (tuple(g.name for g in sg), tuple(g.name for g in dg))
    mode = effective_mode(sg, dg)
    if mode is None:
        # no rule applies, not even one between ``any`` and ``any``: the kernel lets traffic
        # between endpoints in no group pass before it looks at a rule (nft.compile_ruleset)
        return Verdict(
            action="allow", rule=None, mode=None, reason="neither end is in a group (unmanaged)"
        )
    for rule in policy.spec.rules:
        if not (_side(rule.from_, sg) and _side(rule.to, dg) and _l4_port_match(rule, l4, port)):
            continue
        if rule.protocols:
            if app is None:
                return Verdict(
                    action="inspect",
                    rule=rule.name,
                    mode=mode,
                    src_groups=names[0],
                    dst_groups=names[1],
                    reason=f"rule {rule.name!r} needs the application protocol",
                )
            if app not in rule.protocols:
                continue
        what = f"{l4}/{port}" + (f" {app}" if app else "")
        if rule.action == "allow":
            return Verdict(
                action="allow",
                rule=rule.name,
                mode=mode,
                src_groups=names[0],
                dst_groups=names[1],
                reason=f"allowed by rule {rule.name!r} ({what})",
            )
        return _by_mode(mode, rule.name, f"denied by rule {rule.name!r} ({what})", names)
    return _by_mode(mode, None, f"no rule allows it (implicit rule of {mode} mode)", names)


def awaited_protocols(
    policy: Policy,
    src: Endpoint,
    dst: Endpoint,
    port: int,
    *,
    l4: str = "tcp",
    resolved: Resolved | None = None,
) -> frozenset[str]:
    """The application protocols the rules name for this connection at L3/L4, up to the first
    matching rule that names none (no later rule is reached): what detecting the protocol can
    still decide."""
    res = resolved or {}
    sg, dg = groups_of(policy, src, res), groups_of(policy, dst, res)
    out: set[str] = set()
    for rule in policy.spec.rules:
        if _side(rule.from_, sg) and _side(rule.to, dg) and _l4_port_match(rule, l4, port):
            if not rule.protocols:
                break
            out.update(rule.protocols)
    return frozenset(out)


def _by_mode(
    mode: str | None, rule: str | None, why: str, names: tuple[tuple[str, ...], ...]
) -> Verdict:
    action = {"protect": "deny", "monitor": "violation", "discover": "learn", None: "deny"}[mode]
    suffix = {
        "deny": "",
        "violation": "; monitor mode records it and lets it pass",
        "learn": "; discover mode learns it",
    }[action]
    return Verdict(
        action=action,
        rule=rule,
        mode=mode,
        reason=why + suffix,
        src_groups=names[0],
        dst_groups=names[1],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DataNeeds:
    """What the first bytes of an allowed connection must still be checked for."""

    block: tuple[str, ...] = ()  # sensor globs whose match blocks the connection
    alert: tuple[str, ...] = ()  # sensor globs whose match is recorded
    require_tls: bool = False
    tls_groups: tuple[str, ...] = ()
    tls_action: str = "block"  # "block" when any requirement that applies blocks, else "alert"
    tls_min_version: str = "TLS1.2"  # the highest minimum among the requirements that apply
    waf_block: tuple[str, ...] = ()  # WAF sensor globs whose match blocks the request
    waf_alert: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.block or self.alert or self.require_tls or self.waf)

    @property
    def waf(self) -> bool:
        return bool(self.waf_block or self.waf_alert)

    @property
    def data(self) -> bool:
        """Something in the bytes (DLP or WAF) must be looked at up to the depth."""
        return bool(self.block or self.alert or self.waf_block or self.waf_alert)

    def waf_action_for(self, sensor: str) -> str | None:
        if any(fnmatch.fnmatchcase(sensor, p) for p in self.waf_block):
            return "block"
        if any(fnmatch.fnmatchcase(sensor, p) for p in self.waf_alert):
            return "alert"
        return None

    def action_for(self, sensor: str) -> str | None:
        if any(fnmatch.fnmatchcase(sensor, p) for p in self.block):
            return "block"
        if any(fnmatch.fnmatchcase(sensor, p) for p in self.alert):
            return "alert"
        return None


def data_needs(
    policy: Policy, src: Endpoint, dst: Endpoint, resolved: Resolved | None = None
) -> DataNeeds:
    """DLP and TLS requirements from both ends' groups (egress of ``src``, ingress of ``dst``)."""
    res = resolved or {}
    sg, dg = groups_of(policy, src, res), groups_of(policy, dst, res)
    block: list[str] = []
    alert: list[str] = []
    for g in (*sg, *dg):
        for d in g.dlp:
            (block if d.action == "block" else alert).append(d.sensor)
    # WAF rules protect a group's servers: the groups of the destination (requests into them)
    waf_block: list[str] = []
    waf_alert: list[str] = []
    for g in dg:
        for w in g.waf_rules():
            (waf_block if w.action == "block" else waf_alert).append(w.sensor)
    tls: dict[str, str] = {}  # group -> action
    minimums: list[str] = []
    for groups, direction in ((sg, "outbound"), (dg, "inbound")):
        for g in groups:
            for req in g.tls_requirements():
                if req.direction in (direction, "both"):
                    minimums.append(req.minVersion)
                    if tls.get(g.name) != "block":
                        tls[g.name] = req.action
    return DataNeeds(
        block=tuple(dict.fromkeys(block)),
        alert=tuple(dict.fromkeys(alert)),
        require_tls=bool(tls),
        tls_groups=tuple(tls),
        tls_action="block" if "block" in tls.values() else "alert",
        tls_min_version=max(minimums, key=TLS_ORDER.index, default="TLS1.2"),
        waf_block=tuple(dict.fromkeys(waf_block)),
        waf_alert=tuple(dict.fromkeys(waf_alert)),
    )


TLS_ORDER = ("SSL2.0", "SSL3.0", "TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3")
