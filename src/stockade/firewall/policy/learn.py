"""Discover mode: turn learned connections into groups and allow rules.

Each workload gets a group by namespace and ``app`` label (or pod name), each external address a
/32 (/128) group; each distinct (source group, destination group, port, protocol) becomes an allow
rule that names the application protocol seen, so that switched to Protect the same traffic passes
and new kinds (another port, another protocol, another peer) are blocked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from stockade.firewall.policy.model import Policy
from stockade.model.errors import ConfigError

_BAD = re.compile(r"[^a-z0-9.-]+")


def _slug(*parts: str) -> str:
    text = ".".join(p for p in parts if p).lower()
    text = _BAD.sub("-", text).strip("-.")
    return text[:63].strip("-.") or "unnamed"


def unique_name(name: str, key: str, taken: Mapping[str, Any] | set[str]) -> str:
    """``name``, or when it is taken (label values that slug alike, a name cut at 63
    characters) the same with a hash of ``key``, what it stands for."""
    if name not in taken:
        return name
    digest = hashlib.sha256(key.encode()).hexdigest()
    for i in range(8, 65, 8):
        alt = f"{name[: 62 - i].rstrip('-.')}-{digest[:i]}"
        if alt not in taken:
            return alt
    raise ConfigError(f"cannot name {name!r} uniquely")  # pragma: no cover - 2^256 names


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


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two rule mappings (defaults left out or not) say the same thing."""

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            r["from"],
            r["to"],
            r.get("ports", ["any"]),
            r.get("protocols", []),
            r.get("action", "allow"),
        )

    return key(a) == key(b)


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
        # a name another selector already has (a base group, or one that slugs alike) must
        # not take this endpoint's rules to that selector's workloads
        new: str = unique_name(g["name"], key, groups)
        g["name"] = new
        selectors[key] = new
        groups[new] = g
        return new

    seen: set[tuple[str, str, str, str]] = set()
    for row in rows:
        if row["l4"] not in ("tcp", "udp"):
            continue  # a rule needs a port: discover passes the others without learning them
        src, dst = group_name(row["src_endpoint"]), group_name(row["dst_endpoint"])
        app = row.get("app") or "proto.unknown"
        port = f"{row['l4']}/{row['port']}"
        if (src, dst, port, app) in seen:
            continue
        seen.add((src, dst, port, app))
        rule: dict[str, Any] = {"from": [src], "to": [dst], "ports": [port], "action": "allow"}
        if app != "proto.unknown":
            rule["protocols"] = [app]
        name = _slug(
            "learned", src, dst, str(row["l4"]), str(row["port"]), app.removeprefix("proto.")
        )
        if name in rules and _same(rules[name], rule):
            continue  # learned before (the base policy has it)
        rule["name"] = unique_name(name, repr((src, dst, port, app)), rules)
        rules[rule["name"]] = rule
    for group in groups.values():
        group["mode"] = mode
    data = {
        "metadata": {"name": base.metadata.name if base else name},
        "spec": {"groups": list(groups.values()), "rules": list(rules.values())},
    }
    return Policy.model_validate(data)
