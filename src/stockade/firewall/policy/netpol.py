"""Kubernetes NetworkPolicy in and out, for the L3/L4 part of a policy.

Import: each NetworkPolicy becomes a group for the pods it selects (mode protect: selected pods are
isolated, as Kubernetes does) and one allow rule per ingress/egress item. Export: each group in
protect mode that selects pods by one namespace and labels becomes a NetworkPolicy admitting what
the allow rules let in; groups in monitor or discover mode block nothing, so they get none (a
NetworkPolicy would isolate their pods). What NetworkPolicy cannot say (deny rules, application protocols, DLP, DNS groups, pod name
globs) is left out, and each omission is reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from stockade.firewall.policy.learn import _slug
from stockade.firewall.policy.learn import unique_name as _unique
from stockade.firewall.policy.model import (
    ANY,
    Group,
    LabelExpression,
    Policy,
    PortRange,
    parse_port,
)
from stockade.model.errors import ConfigError

NS_LABEL = "kubernetes.io/metadata.name"


def _label_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _label_selector(sel: Any, where: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A LabelSelector's matchLabels and matchExpressions (as Selector.expressions); empty or
    absent: every pod."""
    if sel is None:
        return {}, []
    if not isinstance(sel, Mapping):
        raise ConfigError(f"{where}: a label selector must be a mapping")
    labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not isinstance(exprs, list):
        raise ConfigError(f"{where}: matchLabels must be a mapping, matchExpressions a list")
    out: list[dict[str, Any]] = []
    for e in exprs:
        if not isinstance(e, Mapping) or not isinstance(e.get("values") or [], list):
            raise ConfigError(f"{where}: a matchExpression must be {{key, operator, values}}")
        expr: dict[str, Any] = {
            "key": str(e.get("key") or ""),
            "operator": str(e.get("operator") or ""),
        }
        if e.get("values"):
            expr["values"] = [_label_value(v) for v in e["values"]]
        try:
            LabelExpression.model_validate(expr)
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{where}: matchExpressions: {msg}") from None
        out.append(expr)
    return {str(k): _label_value(v) for k, v in labels.items()}, out


def _port_texts(item: Mapping[str, Any], where: str, warnings: list[str]) -> tuple[list[str], bool]:
    """The item's ports as Stockade port texts, and whether some were left out (named ports,
    SCTP): then the rule covers less than the NetworkPolicy, never more."""
    raw = item.get("ports") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: ports must be a list")
    texts: list[str] = []
    left_out = False
    for j, p in enumerate(raw):
        if not isinstance(p, Mapping):
            raise ConfigError(f"{where}.ports[{j}]: a port must be a mapping")
        proto = str(p.get("protocol") or "TCP").lower()
        port, end = p.get("port"), p.get("endPort")
        if proto not in ("tcp", "udp"):
            warnings.append(
                f"{where}.ports[{j}]: protocol {proto.upper()} is not enforced; left out"
            )
            left_out = True
            continue
        if port is None:
            texts.append(proto)
            continue
        if isinstance(port, str) and not port.isdigit():
            warnings.append(
                f"{where}.ports[{j}]: named port {port!r} cannot be resolved offline; left out"
            )
            left_out = True
            continue
        if isinstance(port, bool) or not isinstance(port, (int, str)):
            raise ConfigError(f"{where}.ports[{j}]: port {port!r} is not a number or a name")
        text = f"{proto}/{int(port)}-{end}" if end is not None else f"{proto}/{int(port)}"
        try:
            parse_port(text)
        except ValueError as exc:
            raise ConfigError(f"{where}.ports[{j}]: {exc}") from None
        texts.append(text)
    return texts, left_out


class _Import:
    """Groups by selector (one name each, never two selectors under one name) and rules with
    names unique within the policy."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Any]] = {}
        self.by_selector: dict[str, str] = {}
        self.rule_names: set[str] = set()

    def group(self, name: str, selector: dict[str, Any], mode: str = "monitor") -> str:
        key = repr(sorted(selector.items()))
        found = self.by_selector.get(key)
        if found is None:
            found = _unique(name, key, self.groups)
            self.by_selector[key] = found
            self.groups[found] = {"name": found, "selector": selector, "mode": mode}
        if mode == "protect":
            self.groups[found]["mode"] = "protect"
        return found

    def rule_name(self, *parts: str) -> str:
        name = _unique(_slug(*parts), repr(parts), self.rule_names)
        self.rule_names.add(name)
        return name


def _selector_name(namespace: str, labels: Mapping[str, str], exprs: list[dict[str, Any]]) -> str:
    parts = [f"{k}-{v}" for k, v in sorted(labels.items())]
    parts += [f"{e['key']}-{e['operator']}-{'-'.join(e.get('values', []))}" for e in exprs]
    return _slug(namespace.replace("*", "any"), *(parts or ["all"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    """One ingress or egress item: the isolated group it belongs to, the groups it admits
    (none: everyone) and its ports."""

    name: tuple[str, ...]
    target: str
    peers: tuple[str, ...]
    ports: tuple[str, ...]


def _allow(imp: _Import, item: _Item, key: str) -> dict[str, Any]:
    peers = list(item.peers) or [ANY]
    ends = (
        {"from": peers, "to": [item.target]}
        if key == "ingress"
        else {"from": [item.target], "to": peers}
    )
    return {"name": imp.rule_name(*item.name), "ports": list(item.ports), **ends}


def _deny(imp: _Import, what: str, src: list[str], dst: list[str]) -> dict[str, Any]:
    name = imp.rule_name("netpol", what, "isolated")
    return {"name": name, "from": src, "to": dst, "action": "deny"}


def _pair(imp: _Import, out: _Item, into: _Item) -> dict[str, Any] | None:
    """The rule for connections from ``out``'s pods to ``into``'s that both items admit, or
    None when no connection is."""
    srcs = _meet(imp, [out.target], into.peers)
    dsts = _meet(imp, [into.target], out.peers)
    ports = [p for a in out.ports for b in into.ports if (p := _port_meet(a, b)) is not None]
    if not (srcs and dsts and ports):
        return None
    name = imp.rule_name("netpol", *out.name, "to", *into.name)
    return {"name": name, "from": srcs, "to": dsts, "ports": ports}


def _meet(imp: _Import, groups: list[str], peers: tuple[str, ...]) -> list[str]:
    """Groups for the pods in one of ``groups`` and one of ``peers`` (none: everyone)."""
    if not peers:
        return groups
    out: list[str] = []
    for g in groups:
        for p in peers:
            sel = _intersect(imp.groups[g]["selector"], imp.groups[p]["selector"])
            if sel is not None:
                name = _selector_name(
                    sel.get("namespace", "cidr"), sel.get("labels", {}), sel.get("expressions", [])
                )
                out.append(imp.group(name, sel))
    return list(dict.fromkeys(out))


def _intersect(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any] | None:
    """A selector for what both select, or None when nothing is (pods and address blocks are
    apart here: an ipBlock stands for addresses outside the cluster)."""
    if ("cidrs" in a) != ("cidrs" in b):
        return None
    if "cidrs" in a:
        nets = []
        for x in a["cidrs"]:
            for y in b["cidrs"]:
                n, m = ipaddress.ip_network(x), ipaddress.ip_network(y)
                if n.version == m.version and (n.subnet_of(m) or m.subnet_of(n)):  # type: ignore[arg-type]
                    nets.append(n if n.subnet_of(m) else m)  # type: ignore[arg-type]
        if not nets:
            return None
        return {"cidrs": [str(n) for n in sorted(set(nets), key=lambda n: (n.version, n))]}
    ns_a, ns_b = a.get("namespace", "*"), b.get("namespace", "*")
    if ns_a != ns_b and "*" not in (ns_a, ns_b):
        return None
    labels = dict(a.get("labels", {}))
    for k, v in b.get("labels", {}).items():
        if labels.setdefault(k, v) != v:
            return None
    exprs = list(a.get("expressions", []))
    exprs += [e for e in b.get("expressions", []) if e not in exprs]
    out: dict[str, Any] = {"namespace": ns_b if ns_a == "*" else ns_a}
    if labels:
        out["labels"] = labels
    if exprs:
        out["expressions"] = exprs
    return out


def _port_meet(a: str, b: str) -> str | None:
    """The ports two port texts both admit (NetworkPolicy's: any, tcp, udp, proto/low[-high])."""
    x, y = parse_port(a), parse_port(b)
    if x.l4 != y.l4 and "any" not in (x.l4, y.l4):
        return None
    l4 = y.l4 if x.l4 == "any" else x.l4
    low, high = max(x.low, y.low), min(x.high, y.high)
    if low > high:
        return None
    if l4 == "any":  # both every port: NetworkPolicy gives no other "any"
        return ANY
    if (low, high) == (0, 65535):
        return l4
    return f"{l4}/{low}" if low == high else f"{l4}/{low}-{high}"


def import_policies(docs: Iterable[Mapping[str, Any]]) -> tuple[Policy, list[str]]:
    """Kubernetes NetworkPolicies as one Stockade policy with their semantics: the selected
    pods are isolated (protect) in the directions the policy types name, a connection is allowed
    when an ingress or egress item admits it, and a direction no policy isolates stays open."""
    imp = _Import()
    rules: list[dict[str, Any]] = []
    warnings: list[str] = []
    isolated: dict[str, set[str]] = {}  # group -> the directions isolated ("ingress", "egress")
    admitted: dict[str, list[_Item]] = {"ingress": [], "egress": []}

    for doc in docs:
        if not isinstance(doc, Mapping) or doc.get("kind") != "NetworkPolicy":
            continue
        meta = doc.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise ConfigError("NetworkPolicy: metadata must be a mapping")
        ns, np_name = str(meta.get("namespace") or "default"), str(meta.get("name") or "unnamed")
        where = f"NetworkPolicy {ns}/{np_name}"
        spec = doc.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: spec must be a mapping")
        labels, exprs = _label_selector(spec.get("podSelector"), f"{where} podSelector")
        target_sel: dict[str, Any] = {"namespace": ns}
        if labels:
            target_sel["labels"] = labels
        if exprs:
            target_sel["expressions"] = exprs
        target = imp.group(_selector_name(ns, labels, exprs), target_sel, "protect")
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        )
        if not isinstance(types, list) or not set(types) <= {"Ingress", "Egress"}:
            raise ConfigError(f"{where}: policyTypes must list Ingress and/or Egress")
        for direction, key, peer_key in (
            ("Ingress", "ingress", "from"),
            ("Egress", "egress", "to"),
        ):
            if direction not in types:
                continue
            isolated.setdefault(target, set()).add(key)
            items = spec.get(key) or []
            if not isinstance(items, list):
                raise ConfigError(f"{where}: {key} must be a list")
            for i, item in enumerate(items):
                at = f"{where} {key}[{i}]"
                item = item or {}  # "- {}" admits everything
                if not isinstance(item, Mapping):
                    raise ConfigError(f"{at}: must be a mapping")
                raw_peers = item.get(peer_key) or []
                if not isinstance(raw_peers, list):
                    raise ConfigError(f"{at}.{peer_key}: must be a list")
                peers = [
                    g
                    for j, p in enumerate(raw_peers)
                    for g in _peer(p, ns, f"{at}.{peer_key}[{j}]", warnings, imp)
                ]
                if raw_peers and not peers:
                    # an item without peers admits everyone: never widen one whose peers were
                    # all left out
                    warnings.append(f"{at}: no peer could be imported; rule left out")
                    continue
                ports, left_out = _port_texts(item, at, warnings)
                if left_out and not ports:
                    warnings.append(f"{at}: no port could be imported; rule left out")
                    continue
                admitted[key].append(
                    _Item(
                        name=(ns, np_name, key, str(i)),
                        target=target,
                        peers=tuple(peers),
                        ports=tuple(ports or [ANY]),
                    )
                )
    # A connection passes when both ends let it (Kubernetes): out of an egress-isolated pod an
    # egress item must admit it, into an ingress-isolated pod an ingress item must. First match
    # wins here, so the rules come in this order:
    #   1. both ends isolated: one rule per (egress item, ingress item) pair, between what each
    #      admits of the other's pods (selectors intersected), on the ports both admit;
    #   2. deny between those ends for the rest;
    #   3. ingress items (the client is not egress-isolated), 4. deny into isolated pods;
    #   5. egress items (the server is not ingress-isolated), 6. deny out of isolated pods;
    #   7. allow the rest: nothing isolates it (a pod isolated for ingress only reaches anything).
    ingress = [g for g, d in isolated.items() if "ingress" in d]
    egress = [g for g, d in isolated.items() if "egress" in d]
    for out in admitted["egress"]:
        for into in admitted["ingress"]:
            rule = _pair(imp, out, into)
            if rule is not None:
                rules.append(rule)
    if ingress and egress:
        rules.append(_deny(imp, "both", egress, ingress))
    rules += [_allow(imp, item, "ingress") for item in admitted["ingress"]]
    if ingress:
        rules.append(_deny(imp, "ingress", [ANY], ingress))
    rules += [_allow(imp, item, "egress") for item in admitted["egress"]]
    if egress:
        rules.append(_deny(imp, "egress", egress, [ANY]))
    if imp.groups:
        rules.append(
            {"name": imp.rule_name("netpol", "not", "isolated"), "from": [ANY], "to": [ANY]}
        )
    try:
        policy = Policy.model_validate(
            {
                "metadata": {"name": "imported"},
                "spec": {"groups": list(imp.groups.values()), "rules": rules},
            }
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"cannot import NetworkPolicy: {where}: {msg}") from None
    return policy, warnings


def _peer(p: Any, ns: str, where: str, warnings: list[str], imp: _Import) -> list[str]:
    """The groups of one from/to element (none when it cannot be imported: left out, never
    widened)."""
    if not isinstance(p, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    if "ipBlock" in p:
        block = p["ipBlock"] or {}
        if not isinstance(block, Mapping):
            raise ConfigError(f"{where}.ipBlock: must be a mapping")
        cidr = str(block.get("cidr", ""))
        excepts = block.get("except") or []
        try:
            net = ipaddress.ip_network(cidr, strict=False)
            cut = [ipaddress.ip_network(str(e), strict=False) for e in excepts]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.ipBlock: {exc}") from None
        nets = [net]
        for e in cut:
            if e.version != net.version or not e.subnet_of(net):  # type: ignore[arg-type]
                raise ConfigError(f"{where}.ipBlock: except {e} is not inside {net}")
            kept: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
            for n in nets:  # CIDR blocks nest or are apart
                if n.subnet_of(e):  # type: ignore[arg-type]
                    continue
                kept.extend(n.address_exclude(e) if e.subnet_of(n) else [n])  # type: ignore[arg-type]
            nets = kept
        if not nets:
            warnings.append(f"{where}: ipBlock {cidr} minus its except is empty; left out")
            return []
        texts = [str(n) for n in sorted(nets)]
        name = _slug("cidr", cidr.replace("/", "-").replace(":", "-"), *(["except"] if cut else []))
        return [imp.group(name, {"cidrs": texts})]
    labels, exprs = _label_selector(p.get("podSelector"), f"{where}.podSelector")
    namespaces: list[str] = [ns]
    if "namespaceSelector" in p:
        ns_labels, ns_exprs = _label_selector(p["namespaceSelector"], f"{where}.namespaceSelector")
        names: set[str] | None = None  # None: every namespace
        if NS_LABEL in ns_labels:
            names = {ns_labels.pop(NS_LABEL)}
        for req in list(ns_exprs):
            if req["key"] == NS_LABEL and req["operator"] == "In":
                ns_exprs.remove(req)
                values = set(req["values"])
                names = values if names is None else names & values
        if ns_labels or ns_exprs:
            # Namespaces' labels are not known here: matching every namespace would admit more
            # than the NetworkPolicy does, so the peer is left out instead.
            warnings.append(
                f"{where}: namespace labels {ns_labels or ns_exprs} cannot be matched (only "
                f"{NS_LABEL}); peer left out"
            )
            return []
        namespaces = ["*"] if names is None else sorted(names)
    out = []
    for namespace in namespaces:
        sel: dict[str, Any] = {"namespace": namespace}
        if labels:
            sel["labels"] = labels
        if exprs:
            sel["expressions"] = exprs
        out.append(imp.group(_selector_name(namespace, labels, exprs), sel))
    return out


def _np_peer(g: Group) -> dict[str, Any] | None:
    s = g.selector
    if s.cidrs and not s.dns:
        return {"ipBlock": {"cidr": s.cidrs[0]}} if len(s.cidrs) == 1 else None
    if s.dns or s.pods:
        return None
    peer: dict[str, Any] = {}
    if s.namespace and s.namespace != "*":
        if any(c in s.namespace for c in "*?["):
            return None
        peer["namespaceSelector"] = {"matchLabels": {NS_LABEL: s.namespace}}
    elif s.namespace == "*":
        peer["namespaceSelector"] = {}
    if s.labels or s.expressions:
        peer["podSelector"] = _np_selector(g)
    return peer


def _np_selector(g: Group) -> dict[str, Any]:
    """The group's labels and expressions as a LabelSelector."""
    out: dict[str, Any] = {}
    if g.selector.labels:
        out["matchLabels"] = dict(g.selector.labels)
    if g.selector.expressions:
        out["matchExpressions"] = [
            e.model_dump(exclude_defaults=True) for e in g.selector.expressions
        ]
    return out


def _overlap(a: PortRange, b: PortRange) -> bool:
    return (a.l4 == b.l4 or "any" in (a.l4, b.l4)) and a.low <= b.high and b.low <= a.high


def _exportable(g: Group) -> bool:
    """One namespace plus labels: what a NetworkPolicy's podSelector can select."""
    s = g.selector
    return not (
        s.cidrs or s.dns or s.pods or not s.namespace or any(c in s.namespace for c in "*?[")
    )


def _selector_meet(a: Group, b: Group) -> dict[str, Any] | None:
    """A LabelSelector of the pods both groups select (:func:`_intersect` of their selectors, in
    their one namespace), or None when no pod can be in both."""
    both = _intersect(
        a.selector.model_dump(exclude_defaults=True), b.selector.model_dump(exclude_defaults=True)
    )
    if both is None:
        return None
    out: dict[str, Any] = {}
    if both.get("labels"):
        out["matchLabels"] = both["labels"]
    if both.get("expressions"):
        out["matchExpressions"] = both["expressions"]
    return out


def _ingress(
    policy: Policy, targets: frozenset[str], into: str, warnings: list[str]
) -> list[dict[str, Any]]:
    """The ingress items of the allow rules into a pod of every group in ``targets`` (``into``
    names them in warnings), in the policy's order, as first match reads them."""
    by_name = {g.name: g for g in policy.spec.groups}
    ingress: list[dict[str, Any]] = []
    denied: list[PortRange] = []  # ports of the deny rules into the group met so far
    for r in policy.spec.rules:
        if not targets & set(r.to) and ANY not in r.to:
            continue
        if r.action == "deny":
            denied += r.port_ranges()
            continue
        if r.from_ == [ANY] and r.to == [ANY]:
            # "nothing isolated" (the import's last rule): admitting everyone into each
            # group would, NetworkPolicies adding up, also open the pods another group
            # isolates; an unisolated pod needs no NetworkPolicy
            continue
        if any(_overlap(a, b) for a in r.port_ranges() for b in denied):
            # first match wins: a NetworkPolicy has no deny to put before it, and
            # admitting the rule whole would let in what the deny rule stops
            warnings.append(
                f"rule {r.name!r}: an earlier deny rule takes part of it; left out of {into}"
            )
            continue
        peers: list[dict[str, Any]] = []
        everyone = False
        for name in r.from_:
            if name == ANY:
                everyone = True
                break
            peer = _np_peer(by_name[name])
            if peer is None:
                warnings.append(
                    f"rule {r.name!r}: group {name!r} cannot be a NetworkPolicy peer; left out"
                )
                continue
            peers.append(peer)
        if everyone:
            peers = []
        elif not peers:
            # an ingress item without "from" admits every source: never widen a rule whose
            # sources were all left out
            warnings.append(
                f"rule {r.name!r}: no source can be a NetworkPolicy peer; rule left out of {into}"
            )
            continue
        ports: list[dict[str, Any]] = []
        for text in r.ports:
            pr = parse_port(text)
            if pr.l4 == "icmp":
                warnings.append(f"rule {r.name!r}: NetworkPolicy has no ICMP; icmp left out")
                continue
            for l4 in ("tcp", "udp") if pr.l4 == "any" else (pr.l4,):
                if (pr.low, pr.high) == (0, 65535):
                    ports.append({"protocol": l4.upper()})
                else:
                    item: dict[str, Any] = {"protocol": l4.upper(), "port": pr.low}
                    if pr.high != pr.low:
                        item["endPort"] = pr.high
                    ports.append(item)
        if not ports:  # icmp alone: an item without ports would admit every port
            continue
        rule: dict[str, Any] = {}
        if peers:
            rule["from"] = peers
        every_port = {p["protocol"] for p in ports if list(p) == ["protocol"]} >= {"TCP", "UDP"}
        if ports and not every_port:
            rule["ports"] = ports
        ingress.append(rule)
    return ingress


def _network_policy(name: str, namespace: str, selector: dict[str, Any], ingress: list[Any]) -> Any:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "stockade"},
        },
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def export_policies(policy: Policy) -> tuple[list[dict[str, Any]], list[str]]:
    """One NetworkPolicy per protect group (the allow rules into it); and where a pod can be in
    a protect group and in a group that blocks nothing, one for the pods of both, with the
    allow rules into either (NetworkPolicies add up: those pods get what Stockade lets in)."""
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    for r in policy.spec.rules:
        if r.action == "deny":
            warnings.append(f"rule {r.name!r}: NetworkPolicy has no deny rules; left out")
        elif r.protocols:
            warnings.append(
                f"rule {r.name!r}: application protocols {r.protocols} left out (L4 only)"
            )
    open_groups = [g for g in policy.spec.groups if g.mode != "protect" and _exportable(g)]
    for g in policy.spec.groups:
        namespace = g.selector.namespace
        if not _exportable(g) or namespace is None:
            if not (g.selector.cidrs or g.selector.dns):
                warnings.append(
                    f"group {g.name!r}: not one namespace plus labels; no NetworkPolicy for it"
                )
            continue
        if g.mode != "protect":
            # A NetworkPolicy isolates the pods it selects; this group's mode blocks nothing
            # (monitor records, discover learns), so exporting it would block what it lets pass.
            # Its pods stay unisolated unless a protect group also selects them.
            warnings.append(
                f"group {g.name!r} is in {g.mode} mode, which blocks nothing: no NetworkPolicy for"
                " it (a NetworkPolicy would isolate its pods); set mode: protect, or export"
                " --learned --mode protect, to enforce it in Kubernetes"
            )
            continue
        own = _ingress(policy, frozenset({g.name}), f"group {g.name!r}", warnings)
        out.append(_network_policy(f"stockade-{g.name}", namespace, _np_selector(g), own))
        for h in open_groups:
            both = _selector_meet(g, h)
            if both is None:
                continue
            noted: list[str] = []
            shared = _ingress(
                policy, frozenset({g.name, h.name}), f"the pods of {g.name!r} and {h.name!r}", noted
            )
            if shared == own:  # no rule into h adds anything for them
                continue
            warnings += [w for w in noted if w not in warnings]
            out.append(_network_policy(f"stockade-{g.name}-{h.name}", namespace, both, shared))
    return out, warnings
