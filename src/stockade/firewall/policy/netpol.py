"""Kubernetes NetworkPolicy in and out, for the L3/L4 part of a policy.

Import: each NetworkPolicy becomes a group for the pods it selects (mode protect: selected pods are
isolated, as Kubernetes does) and one allow rule per ingress/egress item. Export: each group that
selects pods by one namespace and labels becomes a NetworkPolicy admitting what the allow rules let
in. What NetworkPolicy cannot say (deny rules, application protocols, DLP, DNS groups, pod name
globs) is left out, and each omission is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from stockade.firewall.policy.learn import _slug
from stockade.firewall.policy.model import ANY, Group, Policy, parse_port
from stockade.model.errors import ConfigError

NS_LABEL = "kubernetes.io/metadata.name"

# adds (or reuses) a group by name and selector and returns its name
AddGroup: TypeAlias = Callable[[str, dict[str, Any]], str]


def _labels(sel: Any, where: str, warnings: list[str]) -> dict[str, str]:
    if not isinstance(sel, Mapping):
        return {}
    if sel.get("matchExpressions"):
        warnings.append(f"{where}: matchExpressions are not supported; only matchLabels were used")
    return {str(k): str(v) for k, v in (sel.get("matchLabels") or {}).items()}


def import_policies(docs: Iterable[Mapping[str, Any]]) -> tuple[Policy, list[str]]:
    groups: dict[str, dict[str, Any]] = {}
    rules: list[dict[str, Any]] = []
    warnings: list[str] = []

    def add_group(name: str, selector: dict[str, Any], mode: str = "monitor") -> str:
        g = groups.setdefault(name, {"name": name, "selector": selector, "mode": mode})
        if mode == "protect":
            g["mode"] = "protect"
        return name

    for doc in docs:
        if doc.get("kind") != "NetworkPolicy":
            continue
        meta = doc.get("metadata") or {}
        ns, np_name = meta.get("namespace") or "default", meta.get("name") or "unnamed"
        where = f"NetworkPolicy {ns}/{np_name}"
        spec = doc.get("spec") or {}
        target_sel: dict[str, Any] = {"namespace": ns}
        labels = _labels(spec.get("podSelector"), where, warnings)
        if labels:
            target_sel["labels"] = labels
        target = add_group(
            _slug(ns, *(f"{k}-{v}" for k, v in sorted(labels.items())))
            if labels
            else _slug(ns, "all"),
            target_sel,
            "protect",
        )
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        )
        for direction, key, peer_key in (
            ("Ingress", "ingress", "from"),
            ("Egress", "egress", "to"),
        ):
            if direction not in types:
                continue
            for i, item in enumerate(spec.get(key) or []):
                peers = [
                    _peer(p, ns, f"{where} {key}[{i}]", warnings, add_group)
                    for p in (item.get(peer_key) or [])
                ] or [ANY]
                ports: list[str] = []
                named_port = False
                for p in item.get("ports") or []:
                    proto = str(p.get("protocol", "TCP")).lower()
                    port = p.get("port")
                    if port is None:
                        ports.append(proto)
                    elif isinstance(port, int):
                        end = p.get("endPort")
                        ports.append(f"{proto}/{port}-{end}" if end else f"{proto}/{port}")
                    else:
                        warnings.append(
                            f"{where} {key}[{i}]: named port {port!r} cannot be resolved offline; rule skipped"
                        )
                        named_port = True
                        break
                if named_port:
                    continue
                rule: dict[str, Any] = {
                    "name": _slug(ns, np_name, key, str(i)),
                    "action": "allow",
                    "ports": ports or [ANY],
                }
                rule.update(
                    {"from": peers, "to": [target]}
                    if key == "ingress"
                    else {"from": [target], "to": peers}
                )
                rules.append(rule)
    try:
        policy = Policy.model_validate(
            {
                "metadata": {"name": "imported"},
                "spec": {"groups": list(groups.values()), "rules": rules},
            }
        )
    except ValueError as exc:
        raise ConfigError(f"cannot import NetworkPolicy: {exc}") from None
    return policy, warnings


def _peer(
    p: Mapping[str, Any], ns: str, where: str, warnings: list[str], add_group: AddGroup
) -> str:
    if "ipBlock" in p:
        block = p["ipBlock"] or {}
        if block.get("except"):
            warnings.append(
                f"{where}: ipBlock except {block['except']} is not supported and was ignored"
            )
        cidr = str(block.get("cidr", ""))
        return add_group(_slug("cidr", cidr.replace("/", "-").replace(":", "-")), {"cidrs": [cidr]})
    sel: dict[str, Any] = {}
    if "namespaceSelector" in p:
        nsl = _labels(p["namespaceSelector"], where, warnings)
        if NS_LABEL in nsl:
            sel["namespace"] = nsl.pop(NS_LABEL)
        elif not nsl:
            sel["namespace"] = "*"
        if nsl:
            warnings.append(
                f"{where}: namespace labels {nsl} cannot be matched (only {NS_LABEL}); using every namespace"
            )
            sel.setdefault("namespace", "*")
    else:
        sel["namespace"] = ns
    labels = _labels(p.get("podSelector"), where, warnings)
    if labels:
        sel["labels"] = labels
    name = (
        _slug(
            sel["namespace"].replace("*", "any"), *(f"{k}-{v}" for k, v in sorted(labels.items()))
        )
        if labels
        else _slug(sel["namespace"].replace("*", "any"), "all")
    )
    return add_group(name, sel)


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
    if s.labels:
        peer["podSelector"] = {"matchLabels": dict(s.labels)}
    return peer


def export_policies(policy: Policy) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    by_name = {g.name: g for g in policy.spec.groups}
    for r in policy.spec.rules:
        if r.action == "deny":
            warnings.append(f"rule {r.name!r}: NetworkPolicy has no deny rules; left out")
        elif r.protocols:
            warnings.append(
                f"rule {r.name!r}: application protocols {r.protocols} left out (L4 only)"
            )
    for g in policy.spec.groups:
        s = g.selector
        if s.cidrs or s.dns or s.pods or not s.namespace or any(c in s.namespace for c in "*?["):
            if not (s.cidrs or s.dns):
                warnings.append(
                    f"group {g.name!r}: not one namespace plus labels; no NetworkPolicy for it"
                )
            continue
        ingress: list[dict[str, Any]] = []
        for r in policy.spec.rules:
            if r.action != "allow" or (g.name not in r.to and ANY not in r.to):
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
                    f"rule {r.name!r}: no source can be a NetworkPolicy peer; rule left out"
                    f" of group {g.name!r}"
                )
                continue
            ports: list[dict[str, Any]] = []
            for text in r.ports:
                pr = parse_port(text)
                for l4 in ("tcp", "udp") if pr.l4 == "any" else (pr.l4,):
                    if (pr.low, pr.high) == (0, 65535):
                        ports.append({"protocol": l4.upper()})
                    else:
                        item: dict[str, Any] = {"protocol": l4.upper(), "port": pr.low}
                        if pr.high != pr.low:
                            item["endPort"] = pr.high
                        ports.append(item)
            rule: dict[str, Any] = {}
            if peers:
                rule["from"] = peers
            every_port = {p["protocol"] for p in ports if list(p) == ["protocol"]} >= {"TCP", "UDP"}
            if ports and not every_port:
                rule["ports"] = ports
            ingress.append(rule)
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": dict(s.labels)} if s.labels else {},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        }
        if g.mode != "protect" and not ingress:
            continue
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": f"stockade-{g.name}",
                    "namespace": s.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "stockade"},
                },
                "spec": spec,
            }
        )
    return out, warnings
