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
from collections.abc import Iterator, Mapping
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


def groups_of(
    policy: Policy, ep: Endpoint, resolved: Resolved, *, exhaustive: bool = False
) -> tuple[Group, ...]:
    """The groups ``ep`` is in, in policy order. ``exhaustive``: ask every group's selector
    (the reference the tests compare the index against)."""
    if exhaustive:
        return tuple(g for g in policy.spec.groups if selects(g.selector, ep, resolved))
    return _index(policy).groups_of(ep, resolved)


def _side(names: list[str], groups: tuple[Group, ...]) -> bool:
    return ANY in names or any(g.name in names for g in groups)


_GLOB = frozenset("*?[")


class _Index:
    """One policy's groups and rules, indexed so that judging a new connection asks only the
    selectors and rules that can match it (a policy of thousands of groups asked every selector
    and every rule: ~90 ms a new pair). Built once per policy object; the answers are those of
    the linear scans (``exhaustive=True``)."""

    def __init__(self, policy: Policy) -> None:
        groups = policy.spec.groups
        self.groups = groups
        # CIDR groups by (IP version, prefix length, network), every prefix length in use
        self.nets: dict[tuple[int, int, int], list[int]] = {}
        self.lengths: dict[int, list[int]] = {4: [], 6: []}
        # pod groups by their exact namespace, else by one of their labels, else asked always
        self.by_ns: dict[str, list[int]] = {}
        self.by_label: dict[tuple[str, str], list[int]] = {}
        self.always: list[int] = []  # DNS groups, and pod groups with nothing to index on
        for i, g in enumerate(groups):
            sel = g.selector
            if sel.cidrs and not sel.dns:
                for c in sel.cidrs:
                    net = _net(c)
                    self.nets.setdefault(
                        (net.version, net.prefixlen, int(net.network_address)), []
                    ).append(i)
                    if net.prefixlen not in self.lengths[net.version]:
                        self.lengths[net.version].append(net.prefixlen)
            elif sel.cidrs or sel.dns:
                self.always.append(i)
            elif sel.namespace is not None and not _GLOB & set(sel.namespace):
                self.by_ns.setdefault(sel.namespace, []).append(i)
            elif sel.labels:
                self.by_label.setdefault(next(iter(sel.labels.items())), []).append(i)
            else:
                self.always.append(i)
        # rules by the group names on each side (ANY: every connection's side)
        self.rules = policy.spec.rules
        self.ports = [tuple(r.port_ranges()) for r in self.rules]
        self.from_any = [i for i, r in enumerate(self.rules) if ANY in r.from_]
        self.to_any = [i for i, r in enumerate(self.rules) if ANY in r.to]
        self.by_from: dict[str, list[int]] = {}
        self.by_to: dict[str, list[int]] = {}
        for i, r in enumerate(self.rules):
            for name in dict.fromkeys(r.from_):
                self.by_from.setdefault(name, []).append(i)
            for name in dict.fromkeys(r.to):
                self.by_to.setdefault(name, []).append(i)

    def groups_of(self, ep: Endpoint, resolved: Resolved) -> tuple[Group, ...]:
        inside: set[int] = set()  # CIDR groups: a network holding the address proves it
        addr = _addr(ep.ip)
        bits = addr.max_prefixlen
        value = int(addr)
        for length in self.lengths[addr.version]:
            shift = bits - length
            hit = self.nets.get((addr.version, length, value >> shift << shift))
            if hit:
                inside.update(hit)
        maybe: set[int] = set(self.always)  # the others: their selector decides
        if not ep.external:
            maybe.update(self.by_ns.get(ep.namespace, ()))
            for item in ep.labels.items():
                maybe.update(self.by_label.get(item, ()))
        groups = self.groups
        inside.update(i for i in maybe if selects(groups[i].selector, ep, resolved))
        return tuple(groups[i] for i in sorted(inside))

    def candidates(self, sg: tuple[Group, ...], dg: tuple[Group, ...]) -> list[int]:
        """The rules whose both sides name one of these groups (or any), in policy order."""
        froms: set[int] = set(self.from_any)
        for g in sg:
            froms.update(self.by_from.get(g.name, ()))
        tos: set[int] = set(self.to_any)
        for g in dg:
            tos.update(self.by_to.get(g.name, ()))
        return sorted(froms & tos)


_INDEXES: dict[int, tuple[Policy, _Index]] = {}


def _index(policy: Policy) -> _Index:
    """The policy's index, built on first use; the last few policies' are kept (each single
    dict operation is atomic, so threads asking at once at worst build one twice)."""
    entry = _INDEXES.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1]
    index = _Index(policy)
    _INDEXES[id(policy)] = (policy, index)  # the policy kept: its id is not reused meanwhile
    for key in list(_INDEXES)[:-4]:
        _INDEXES.pop(key, None)
    return index


def _matching_rules(
    policy: Policy,
    sg: tuple[Group, ...],
    dg: tuple[Group, ...],
    l4: str,
    port: int,
    exhaustive: bool,
) -> Iterator[Rule]:
    """The rules matching both sides and the port, in order (first match wins)."""
    if exhaustive:
        for rule in policy.spec.rules:
            if _side(rule.from_, sg) and _side(rule.to, dg) and _l4_port_match(rule, l4, port):
                yield rule
        return
    index = _index(policy)
    for i in index.candidates(sg, dg):
        if any(r.covers(l4, port) for r in index.ports[i]):
            yield index.rules[i]


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
    exhaustive: bool = False,
) -> Verdict:
    """The verdict for a connection from ``src`` to ``dst:port`` (``app``: detected protocol).
    ``exhaustive``: the linear scans of every group and rule (the reference)."""
    res = resolved or {}
    sg = groups_of(policy, src, res, exhaustive=exhaustive)
    dg = groups_of(policy, dst, res, exhaustive=exhaustive)
    names = (tuple(g.name for g in sg), tuple(g.name for g in dg))
    mode = effective_mode(sg, dg)
    if mode is None:
        # no rule applies, not even one between ``any`` and ``any``: the kernel lets traffic
        # between endpoints in no group pass before it looks at a rule (nft.compile_ruleset)
        return Verdict(
            action="allow", rule=None, mode=None, reason="neither end is in a group (unmanaged)"
        )
    for rule in _matching_rules(policy, sg, dg, l4, port, exhaustive):
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
    exhaustive: bool = False,
) -> frozenset[str]:
    """The application protocols the rules name for this connection at L3/L4, up to the first
    matching rule that names none (no later rule is reached): what detecting the protocol can
    still decide."""
    res = resolved or {}
    sg = groups_of(policy, src, res, exhaustive=exhaustive)
    dg = groups_of(policy, dst, res, exhaustive=exhaustive)
    out: set[str] = set()
    for rule in _matching_rules(policy, sg, dg, l4, port, exhaustive):
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
    policy: Policy,
    src: Endpoint,
    dst: Endpoint,
    resolved: Resolved | None = None,
    *,
    exhaustive: bool = False,
) -> DataNeeds:
    """DLP and TLS requirements from both ends' groups (egress of ``src``, ingress of ``dst``)."""
    res = resolved or {}
    sg = groups_of(policy, src, res, exhaustive=exhaustive)
    dg = groups_of(policy, dst, res, exhaustive=exhaustive)
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
