"""Compiling a policy to an nftables ruleset (table ``inet stockade``) and the iptables-nft
NFQUEUE chain, applied atomically in the node's network namespace and removed cleanly.

Chains on the forward hook, in priority order:

- ``pre`` (-10): decided connections (ct mark) are reset/dropped or accepted; packets conntrack
  finds invalid are dropped (they could not be judged); new connections run
  through ``classify``, the compiled rules: pure L3/L4 allows are decided in the kernel; anything
  that needs a look at the first bytes (rules with application protocols, deny and implicit rules so
  the enforcer records them with their rule, DLP and TLS requirements) is marked INSPECT. Segments
  without payload stay in the kernel (``nodata``), except the SYN, FINs and RSTs of connections
  the enforcer records or learns (HEADS). The first packet of each connection that goes to the
  enforcer carries FIRST (a fresh flow there), packets from the responder REPLY. The FINs and
  RSTs that stay in the kernel are copied to NFLOG (``log group``, the queue number): the
  enforcer frees the flows of connections that ended without holding any packet.
- iptables-nft ``STOCKADE`` (0): INSPECT and undecided, within the first ``depth`` bytes of the
  connection: ``NFQUEUE`` (with ``--queue-bypass`` when failing open); past the depth the
  connection mark becomes ALLOW, so later packets are accepted first thing in ``pre``.
- ``post`` (10): the verdict's packet mark becomes the connection mark; BLOCK resets or drops;
  BLOCK with QUIET drops silently (the enforcer answered the client with a 403).
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from stockade.firewall.enforce import marks
from stockade.firewall.policy.engine import Endpoint, Resolved, selects
from stockade.firewall.policy.model import ANY, Group, Policy, Rule
from stockade.model.errors import EnforcementError
from stockade.network.netns import in_ns, run

TABLE = "stockade"
CHAIN = "STOCKADE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    queue: int = 0
    depth: int = 65536
    fail_open: bool = True


NFT_NAME_MAX = 255  # NFT_NAME_MAXLEN (256) less the terminating NUL
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ESCAPES = {"-": "_h", ".": "_d"}


def _escape(c: str) -> str:
    return c if c in _PLAIN else _ESCAPES.get(c, f"_u{ord(c):06x}")


def _set_name(group: str, family: int) -> str:
    """The kernel set of a group's addresses in one family. Distinct groups get distinct sets
    (``web-app`` and ``web.app`` must never share one): every character but a-z and 0-9 becomes
    an escape that starts with '_', which nothing else produces, so names decode one way only;
    a name too long for the kernel keeps a prefix plus a hash of the whole group name."""
    encoded = "".join(_escape(c) for c in group)
    name = f"g_{encoded}_{family}"
    if len(name) > NFT_NAME_MAX:
        digest = hashlib.sha256(group.encode()).hexdigest()[:32]
        name = f"g_{encoded[:200]}_x{digest}_{family}"
    return name


class _Candidates:
    """The endpoints a selector may pick, by namespace and by label, so that compiling a policy
    of many groups over many workloads does not test every workload against every group; the
    answer is still ``selects``'."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.all = endpoints
        self.by_ns: dict[str, list[Endpoint]] = {}
        self.by_label: dict[tuple[str, str], list[Endpoint]] = {}
        for e in endpoints:
            self.by_ns.setdefault(e.namespace, []).append(e)
            for item in e.labels.items():
                self.by_label.setdefault(item, []).append(e)

    def of(self, group: Group) -> Sequence[Endpoint]:
        sel = group.selector
        if sel.cidrs or sel.dns:
            return self.all
        pools: list[Sequence[Endpoint]] = []
        if sel.namespace is not None and not any(c in sel.namespace for c in "*?["):
            pools.append(self.by_ns.get(sel.namespace, []))
        pools += [self.by_label.get(item, []) for item in sel.labels.items()]
        return min(pools, key=len) if pools else self.all


def group_addresses(
    group: Group,
    endpoints: Sequence[Endpoint],
    resolved: Resolved,
    candidates: _Candidates | None = None,
) -> dict[int, list[str]]:
    out: dict[int, set[str]] = {4: set(), 6: set()}
    for e in candidates.of(group) if candidates is not None else endpoints:
        if selects(group.selector, e, resolved):
            out[ipaddress.ip_address(e.ip).version].add(e.ip)
    for c in group.selector.cidrs:
        if (
            not group.selector.dns
        ):  # cidr AND dns: only resolved names inside the cidr (from endpoints/resolved)
            net = ipaddress.ip_network(c, strict=False)
            out[net.version].add(str(net))
    for name in group.selector.dns:
        for ip in resolved.get(name, frozenset()):
            e = Endpoint(ip=ip, external=True)
            if selects(group.selector, e, resolved):
                out[ipaddress.ip_address(ip).version].add(ip)
    return {
        v: sorted(s, key=lambda x: ipaddress.ip_network(x, strict=False)) for v, s in out.items()
    }


def _has_data_rules(group: Group) -> bool:
    return bool(group.dlp or group.waf_rules() or group.tls_requirements())


def _intervals(addrs: Sequence[str]) -> list[tuple[int, int]]:
    """Addresses and networks of one family as sorted, merged (first, last) integer spans."""
    spans = sorted(
        (int(n.network_address), int(n.broadcast_address))
        for n in (ipaddress.ip_network(a, strict=False) for a in addrs)
    )
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _overlaps(addrs: Sequence[str], spans: list[tuple[int, int]]) -> bool:
    """Whether any of ``addrs`` (one family) shares an address with the merged ``spans``."""
    starts = [first for first, _ in spans]
    for a in addrs:
        net = ipaddress.ip_network(a, strict=False)
        first, last = int(net.network_address), int(net.broadcast_address)
        i = bisect.bisect_right(starts, last) - 1
        if i >= 0 and spans[i][1] >= first:
            return True
    return False


def _l4_matches(rule: Rule) -> list[str]:
    """nft match fragments for a rule's ports (one fragment per protocol; ``""``: no match on
    the protocol at all)."""
    by_l4: dict[str, list[str]] = {"tcp": [], "udp": []}
    icmp = False
    for r in rule.port_ranges():
        if r.l4 == "any":
            # every IP protocol, as the engine's PortRange.covers says: ICMP and SCTP too. Only
            # TCP and UDP here, a deny rule let ping skip past it to a later allow of ICMP.
            return [""]
        if r.l4 == "icmp":
            icmp = True
            continue
        span = (
            ""
            if (r.low, r.high) == (0, 65535)
            else (str(r.low) if r.low == r.high else f"{r.low}-{r.high}")
        )
        if span == "":
            by_l4[r.l4] = ["*"]
        elif by_l4[r.l4] != ["*"]:
            by_l4[r.l4].append(span)
    out = []
    for proto, spans in by_l4.items():
        if not spans:
            continue
        out.append(
            f"meta l4proto {proto}" if spans == ["*"] else f"{proto} dport {{ {', '.join(spans)} }}"
        )
    if icmp:
        out.append("meta l4proto { icmp, ipv6-icmp }")
    return out


def copy_group(log_group: int) -> int:
    """The NFLOG group clean segments are copied to (see clean.py), beside ``log_group``'s ends."""
    return (log_group + 0x8000) & 0xFFFF


# The pairs (client . server . port, IPv4) the enforcer has said it would answer alone from an
# HTTP/1 request line (Inspector.fast_bits), filled as it says so (Enforcer.advise): a connection's
# head (marks.HEAD, clean.py) passes there in the kernel. Emptied with the table at each policy
# change; the enforcer adds each pair again when asked again under the new rules.
OWN_SETS = {
    "own_allow": "nothing in the bytes to look for: the connection is allowed",
    "own_scan": "DLP that clean.py covers with runs of 12 digits: the head passes if CLEAN",
    "own_scan_short": "... with runs of 9 digits too: the head passes if CLEAN_SHORT",
}
OWN_SET_SIZE = 65536


def own_rules(copies: int) -> list[str]:
    """The ``inspecting`` chain's rules for a connection's head between pairs of :data:`OWN_SETS`:
    the verdict the compiled loop would give its first segment (fastpath_own.c), given here. A head
    with DLP to follow passes only if CLEAN for its sensors, and its copy goes to the enforcer
    first (NFLOG, ``copies``) so that its streams start with it."""
    pair = "ip saddr . ip daddr . tcp dport"
    # the connection's first bytes from its initiator (the loop answers no responder's: REPLY)
    fresh = f"ct direction original ct mark and {marks.SEEN | marks.HEADS:#x} == 0"
    copy = f"log group {copies} snaplen 65535"
    out = [
        f"    meta mark and {marks.NO_DATA | marks.HEAD:#x} == {marks.HEAD:#x} {fresh}"
        f" {pair} @own_allow counter meta mark set meta mark or {marks.NO_DATA:#x}"
        f" ct mark set ct mark or {marks.SEEN | marks.ALLOW:#x}",
    ]
    for name, clean, scanning in (
        ("own_scan", marks.CLEAN, marks.SCANNING),
        ("own_scan_short", marks.CLEAN_SHORT, marks.SCANNING | marks.SCANNING_SHORT),
    ):
        want = marks.HEAD | clean
        out.append(
            f"    meta mark and {marks.NO_DATA | want:#x} == {want:#x} {fresh} {pair} @{name}"
            f" counter meta mark set meta mark or {marks.NO_DATA | marks.FIRST:#x}"
            f" ct mark set ct mark or {marks.SEEN | scanning:#x} {copy}"
        )
    return out


def compile_ruleset(
    policy: Policy,
    endpoints: Sequence[Endpoint],
    resolved: Resolved,
    *,
    log_group: int = 0,
    generation: int = 1,
    depth: int = 65536,
) -> str:
    """The whole ``table inet stockade`` as nft input (deletes and recreates it atomically).
    ``log_group``: the NFLOG group the enforcer reads connection ends from (its queue number);
    clean segments go to :func:`copy_group` of it. ``depth``: the stream depth inspected.
    ``generation`` (1-63): marks the decisions made under these rules; a connection decided under
    another generation is classified again (see marks.GENERATION)."""
    gen = marks.generation(generation)
    allow, inspect = marks.ALLOW | gen, marks.INSPECT | gen
    recorded = (
        f"ct mark set ct mark or {marks.INSPECT | marks.HEADS | marks.SEEN | gen:#x}"
        f" meta mark set meta mark or {marks.FIRST:#x} accept"
    )
    sets: list[str] = []
    nonempty: set[tuple[str, int]] = set()
    pool = _Candidates(endpoints)
    by_group = {g.name: group_addresses(g, endpoints, resolved, pool) for g in policy.spec.groups}
    # Data rules (DLP, WAF, TLS) apply by the groups an address is in, whichever groups a rule
    # names: an allow rule between groups without data rules is still inspected when one of its
    # addresses is also in a group with data rules (a workload in two groups).
    data_spans = {
        fam: _intervals(
            [a for g in policy.spec.groups if _has_data_rules(g) for a in by_group[g.name][fam]]
        )
        for fam in (4, 6)
    }
    in_data = {
        g.name: _has_data_rules(g)
        or any(_overlaps(by_group[g.name][fam], data_spans[fam]) for fam in (4, 6))
        for g in policy.spec.groups
    }
    for g in policy.spec.groups:
        addrs = by_group[g.name]
        for fam, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            elems = addrs[fam]
            body = f"type {typ}; flags interval; auto-merge;"
            if elems:
                body += f" elements = {{ {', '.join(elems)} }};"
                nonempty.add((g.name, fam))
            sets.append(f"  set {_set_name(g.name, fam)} {{ {body} }}")
    managed = {
        fam: sorted(
            {a for g in policy.spec.groups for a in by_group[g.name][fam]},
            key=lambda x: ipaddress.ip_network(x, strict=False),
        )
        for fam in (4, 6)
    }
    for name in OWN_SETS:
        sets.append(
            f"  set {name} {{ type ipv4_addr . ipv4_addr . inet_service; size {OWN_SET_SIZE}; }}"
        )
    for fam, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        elems = managed[fam]
        body = f"type {typ}; flags interval; auto-merge;"
        if elems:
            body += f" elements = {{ {', '.join(elems)} }};"
        sets.append(f"  set managed_{fam} {{ {body} }}")

    classify: list[str] = [
        # traffic between endpoints in no group is unmanaged: allowed in the kernel
        f"    ip saddr != @managed_4 ip daddr != @managed_4 counter ct mark set ct mark or {allow:#x} accept",
        f"    ip6 saddr != @managed_6 ip6 daddr != @managed_6 counter ct mark set ct mark or {allow:#x} accept",
    ]
    for rule in policy.spec.rules:
        decide_in_kernel = (
            rule.action == "allow"
            and not rule.protocols
            # data rules of whatever group "any" covers are unknown here
            and ANY not in rule.from_ + rule.to
            and not any(in_data[g] for g in (*rule.from_, *rule.to))
        )
        if decide_in_kernel:
            verdict = f"ct mark set ct mark or {allow:#x} accept"
        elif rule.action == "allow":  # the SYN stays in the kernel (see chain inspecting)
            verdict = f"ct mark set ct mark or {inspect:#x} goto inspecting"
        else:  # the enforcer records a denied connection with its rule: it wants the SYN too
            verdict = recorded
        for fam, ipkw in ((4, "ip"), (6, "ip6")):
            src = (
                [""]
                if ANY in rule.from_
                else [
                    f"{ipkw} saddr @{_set_name(g, fam)}" for g in rule.from_ if (g, fam) in nonempty
                ]
            )
            dst = (
                [""]
                if ANY in rule.to
                else [f"{ipkw} daddr @{_set_name(g, fam)}" for g in rule.to if (g, fam) in nonempty]
            )
            fam_guard = f"meta nfproto {'ipv4' if fam == 4 else 'ipv6'}"
            for s in src:
                for d in dst:
                    for l4 in _l4_matches(rule):
                        parts = [p for p in (fam_guard, s, d, l4) if p]
                        classify.append(
                            f'    {" ".join(parts)} counter {verdict} comment "{rule.name}"'
                        )
    classify.append(f'    counter {recorded} comment "implicit"')

    reset = "meta l4proto tcp reject with tcp reset"
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        *sets,
        "  chain classify {",
        *classify,
        "  }",
        *_no_payload_chains(),
        "  chain inspecting {",
        f"    ct direction reply meta mark set meta mark or {marks.REPLY:#x}",
        # Segments without payload carry nothing to judge: spare them the trip to user space,
        # except the SYN, FINs and RSTs of connections the enforcer records or learns (HEADS).
        f"    tcp flags & (syn|ack) == syn ct mark and {marks.HEADS:#x} == {marks.HEADS:#x} return",
        f"    ct mark and {marks.HEADS:#x} == {marks.HEADS:#x} tcp flags & (fin|rst) != 0 return",
        # The others' FINs and RSTs pass, and a copy of their headers tells the enforcer the
        # connection ended (no verdict to wait for; see ends.py), so it frees the flow.
        f"    tcp flags & (fin|rst) != 0 log group {log_group}",
        "    jump nodata",
        # A connection's head between ends the enforcer answers alone (OWN_SETS): given here
        *own_rules(copy_group(log_group)),
        # A connection whose verdict is final but for DLP (SCANNING, from the enforcer): a
        # segment the classifier found clean (clean.py) passes now, its copy goes to the
        # enforcer's sensors (NO_DATA: the NFQUEUE chain returns at once). Within the depth only:
        # past it the NFQUEUE chain hands the connection to the kernel.
        *(
            f"    meta mark and {marks.NO_DATA:#x} == 0"
            f" ct mark and {marks.SCANNING | marks.SCANNING_SHORT:#x} == {ct_bits:#x}"
            f" meta mark and {clean:#x} == {clean:#x} ct bytes <= {depth} counter"
            f" log group {copy_group(log_group)} snaplen 65535"
            f" meta mark set meta mark or {marks.NO_DATA:#x}"
            for ct_bits, clean in (
                (marks.SCANNING, marks.CLEAN),
                (marks.SCANNING | marks.SCANNING_SHORT, marks.CLEAN_SHORT),
            )
        ),
        # The first packet of a connection that goes to the enforcer says so: its flow starts
        # afresh there, so a connection that reuses an old address and port pair never inherits
        # the old one's verdict.
        f"    meta mark and {marks.NO_DATA:#x} == 0 ct mark and {marks.SEEN:#x} == 0"
        f" meta mark set meta mark or {marks.FIRST:#x} ct mark set ct mark or {marks.SEEN:#x}",
        "  }",
        "  chain pre {",
        "    type filter hook forward priority -10; policy accept;",
        # the common case first: a connection decided and allowed costs one comparison
        f"    ct mark and {marks.ALLOW | marks.BLOCK | marks.GENERATION:#x} == {allow:#x} accept",
        f"    ct mark and {marks.BLOCK:#x} == {marks.BLOCK:#x} {reset}",
        f"    ct mark and {marks.BLOCK:#x} == {marks.BLOCK:#x} drop",
        f"    ct mark and {marks.ALL | marks.GENERATION:#x} == {inspect:#x} jump inspecting",
        f"    ct mark and {marks.ALL | marks.GENERATION:#x} == {inspect:#x} accept",
        # Decided under an earlier policy: judged again by these rules from a clean slate (the
        # enforcer sees it afresh); RECHECK keeps a connection the enforcer records queued past
        # the depth until it has judged it (a deny must not pass as "past the depth").
        f"    ct mark and {marks.ALLOW | marks.INSPECT:#x} != 0"
        f" ct mark set ct mark and {0xFFFFFFFF & ~marks.DECISION:#x} or {marks.RECHECK:#x}"
        " counter jump classify",
        "    ct state new counter jump classify",
        # Conntrack could not place it (an ICMP echo reply nobody asked for, a TCP segment out
        # of every window): never classified, it would pass unjudged, a channel around every
        # rule; kube-proxy drops these in its forward chain too.
        '    ct state invalid counter drop comment "invalid: never judged"',
        "  }",
        "  chain post {",
        "    type filter hook forward priority 10; policy accept;",
        # only packets back from the verdict handler carry these bits
        f"    meta mark and {marks.ALLOW | marks.BLOCK | marks.SCAN | marks.SCAN_SHORT:#x} == 0 accept",
        f"    meta mark and {marks.BLOCK:#x} == {marks.BLOCK:#x} ct mark set ct mark or {marks.BLOCK:#x}",
        f"    meta mark and {marks.ALLOW:#x} == {marks.ALLOW:#x} ct mark set ct mark or {marks.ALLOW:#x}",
        f"    meta mark and {marks.SCAN:#x} == {marks.SCAN:#x}"
        f" ct mark set ct mark or {marks.SCANNING:#x}",
        f"    meta mark and {marks.SCAN_SHORT:#x} == {marks.SCAN_SHORT:#x}"
        f" ct mark set ct mark or {marks.SCANNING_SHORT:#x}",
        f"    meta mark and {marks.BLOCK | marks.QUIET:#x} == {marks.BLOCK | marks.QUIET:#x}"
        ' counter drop comment "answered"',  # the enforcer sent a 403 in the server's name
        f"    meta mark and {marks.BLOCK:#x} == {marks.BLOCK:#x} {reset}",
        f"    meta mark and {marks.BLOCK:#x} == {marks.BLOCK:#x} drop",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _no_payload_chains() -> list[str]:
    """Chains that mark TCP segments without payload: the IP length is exactly the headers' length.

    One lookup on the TCP header length, then two comparisons. IPv4 with options and IPv6 with
    extension headers never match, so they are inspected: the shortcut only ever skips segments
    it can prove empty."""
    mark = f"meta mark set meta mark or {marks.NO_DATA:#x}"
    jumps = ", ".join(f"{doff} : jump nodata_{doff}" for doff in range(5, 16))
    out = ["  chain nodata {", f"    tcp doff vmap {{ {jumps} }}", "  }"]
    for doff in range(5, 16):
        out += [
            f"  chain nodata_{doff} {{",
            f"    ip hdrlength 5 ip length {20 + doff * 4} {mark}",
            f"    ip6 nexthdr tcp ip6 length {doff * 4} {mark}",
            "  }",
        ]
    return out


# iptables match for connections under inspection (the jump into the STOCKADE chain)
_UNDER_INSPECTION = ("-m", "connmark", "--mark", f"{marks.INSPECT:#x}/{marks.ALL:#x}")


def _iptables(node: str, binary: str, *args: str, check: bool = True) -> None:
    run(in_ns(node, binary, "-w", *args), check=check)


def table_handle(node: str) -> int | None:
    """The kernel's handle of ``table inet stockade`` in ``node`` (a new one each time the table is
    loaded again), or None when it is not there."""
    import json

    out = run(in_ns(node, "nft", "-j", "list", "tables"), check=False).stdout
    try:
        items = json.loads(out or "{}").get("nftables", [])
    except ValueError:
        return None
    for item in items:
        table = item.get("table") if isinstance(item, dict) else None
        if table and table.get("family") == "inet" and table.get("name") == TABLE:
            handle = table.get("handle")
            return handle if isinstance(handle, int) else None
    return None


def add_own_pairs(node: str, pairs: dict[str, list[tuple[str, str, int]]]) -> None:
    """Add (client, server, port) pairs to the sets of :data:`OWN_SETS` (one transaction)."""
    lines = [
        f"add element inet {TABLE} {name} {{ "
        + ", ".join(f"{c} . {s} . {port}" for c, s, port in items)
        + " }"
        for name, items in pairs.items()
        if items
    ]
    if lines:
        load(node, "\n".join(lines) + "\n")


def load(node: str, text: str) -> None:
    """Feed nft input to ``nft -f -`` in ``node``'s namespace (one atomic transaction)."""
    import subprocess

    proc = subprocess.run(
        in_ns(node, "nft", "-f", "-"),
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "Error" in ln), proc.stderr.strip())
        raise EnforcementError(f"nft rejected the rules: {first or proc.returncode}")


def apply(node: str, ruleset: str, settings: Settings) -> None:
    """Load the ruleset atomically, then (re)create the NFQUEUE chain, in ``node``'s namespace."""
    load(node, ruleset)
    queue = ["-j", "NFQUEUE", "--queue-num", str(settings.queue)]
    if settings.fail_open:
        queue.append("--queue-bypass")
    for binary in ("iptables", "ip6tables"):
        _remove_chain(node, binary)
        _iptables(node, binary, "-N", CHAIN)
        _iptables(
            node,
            binary,
            "-A",
            CHAIN,
            "-m",
            "mark",
            "--mark",
            f"{marks.NO_DATA:#x}/{marks.NO_DATA:#x}",
            "-j",
            "RETURN",
        )
        recheck = f"{marks.RECHECK | marks.HEADS:#x}/{marks.RECHECK | marks.HEADS:#x}"
        _iptables(node, binary, "-A", CHAIN, "-m", "connmark", "--mark", recheck, *queue)
        count = ["-m", "connbytes", "--connbytes-dir", "both", "--connbytes-mode", "bytes"]
        # Past the depth nothing is inspected any more: ALLOW hands the connection to the kernel
        # for good (the pre chain then accepts it first thing).
        _iptables(node, binary, "-A", CHAIN, *count, "--connbytes", f"{settings.depth + 1}:",
                  "-j", "CONNMARK", "--or-mark", f"{marks.ALLOW:#x}")  # fmt: skip
        _iptables(node, binary, "-A", CHAIN, *count, "--connbytes", f"0:{settings.depth}", *queue)
        # Only connections under inspection enter the chain: the others pay one match.
        _iptables(node, binary, "-I", "FORWARD", "1", *_UNDER_INSPECTION, "-j", CHAIN)


def _remove_chain(node: str, binary: str) -> None:
    for jump in (_UNDER_INSPECTION, ()):  # today's jump, and the plain one of earlier versions
        for _ in range(8):  # bounded: remove every jump we may have inserted
            proc = run(in_ns(node, binary, "-w", "-D", "FORWARD", *jump, "-j", CHAIN), check=False)
            if proc.returncode != 0:
                break
    _iptables(node, binary, "-F", CHAIN, check=False)
    _iptables(node, binary, "-X", CHAIN, check=False)


def remove(node: str) -> None:
    """Remove every rule this module made (idempotent)."""
    run(in_ns(node, "nft", "delete", "table", "inet", TABLE), check=False)
    for binary in ("iptables", "ip6tables"):
        _remove_chain(node, binary)


def installed(node: str) -> bool:
    proc = run(in_ns(node, "nft", "list", "table", "inet", TABLE), check=False)
    return proc.returncode == 0
