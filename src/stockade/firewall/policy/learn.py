"""Discover mode: turn learned connections into groups and allow rules.

Each workload gets a group by namespace and ``app`` label (or pod name), each external address a
/32 (/128) group; each distinct (source group, destination group, port, protocol) becomes an allow
rule that names the application protocol seen, so that switched to Protect the same traffic passes
and new kinds (another port, another protocol, another peer) are blocked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from stockade.firewall.policy.model import Policy

_BAD = re.compile(r"[^a-z0-9.-]+")


def _slug(*parts: str) -> str:
    text = ".".join(p for p in parts if p).lower()
    text = _BAD.sub("-", text).strip("-.")
    return text[:63].strip("-.") or "unnamed"


def group_for(ep: Mapping[str, Any]) -> dict[str, Any]:
    """An auto group (name and selector) for a learned endpoint."""
    if ep.get("external") or not ep.get("name"):
        net = ipaddress.ip_network(ep["ip"])
        return {"name": _slug("ext", ep["ip"].replace(":", "-")), "selector": {"cidrs": [str(net)]}}
    ns = ep.get("namespace") or ""
    app = (ep.get("labels") or {}).get("app")
    if app:
        return {"name": _slug(ns, app), "selector": {"namespace": ns, "labels": {"app": app}}}
    return {"name": _slug(ns, ep["name"]), "selector": {"namespace": ns, "pods": [ep["name"]]}}


def policy_from_learned(
    rows: Iterable[Mapping[str, Any]],
    *,
    base: Policy | None = None,
    mode: str = "protect",
    name: str = "learned",
) -> Policy:
    groups: dict[str, dict[str, Any]] = {}
    selectors: dict[str, str] = {}  # selector repr -> group name (reuse base groups that match)
    if base is not None:
        for g in base.spec.groups:
            groups[g.name] = g.model_dump(by_alias=True, exclude_defaults=True)
            selectors[repr(sorted(g.selector.model_dump(exclude_defaults=True).items()))] = g.name
    rules: dict[str, dict[str, Any]] = {}
    if base is not None:
        rules = {
            r.name: r.model_dump(by_alias=True, exclude_defaults=True) for r in base.spec.rules
        }

    def group_name(ep: Mapping[str, Any]) -> str:
        g = group_for(ep)
        key = repr(sorted(g["selector"].items()))
        if key in selectors:
            return selectors[key]
        new: str = g["name"]
        selectors[key] = new
        groups.setdefault(new, g)
        return new

    for row in rows:
        src, dst = group_name(row["src_endpoint"]), group_name(row["dst_endpoint"])
        app = row.get("app") or "proto.unknown"
        port = f"{row['l4']}/{row['port']}"
        rule_name = _slug(
            "learned", src, dst, str(row["l4"]), str(row["port"]), app.removeprefix("proto.")
        )
        rule: dict[str, Any] = {
            "name": rule_name,
            "from": [src],
            "to": [dst],
            "ports": [port],
            "action": "allow",
        }
        if app != "proto.unknown":
            rule["protocols"] = [app]
        rules.setdefault(rule_name, rule)
    for group in groups.values():
        group["mode"] = mode
    data = {
        "metadata": {"name": base.metadata.name if base else name},
        "spec": {"groups": list(groups.values()), "rules": list(rules.values())},
    }
    return Policy.model_validate(data)
