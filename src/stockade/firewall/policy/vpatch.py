"""Virtual patches linked to vulnerabilities: which WAF sensor shields which group, given the CVEs
its running workloads' images carry, and the policy with a patch added.

A sensor covers the CVEs it lists (``cves`` in its sensor file); a vulnerability is covered when
its id or one of its aliases is one of them. A group is exposed when one of the workloads it
selects runs an image carrying a covered vulnerability. The patch is a ``waf`` rule of the group
naming the sensor; it is *applied* when a rule with ``action: block`` covers the sensor (a rule
that only alerts leaves the proposal open, as it lets the exploit through).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from pydantic import ValidationError

from stockade.firewall.policy.engine import Endpoint, selects
from stockade.firewall.policy.model import Group, Policy
from stockade.model.errors import ConfigError
from stockade.network.waf.sensors import WafSensor


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """One vulnerability of one image run by one workload (``namespace/name``)."""

    ids: frozenset[str]  # the vulnerability's id and its aliases
    workload: str
    image: str


@dataclass(slots=True, kw_only=True)
class Proposal:
    group: str
    mode: str
    auto: bool  # the group's virtualPatch option (or the policy's) is "auto"
    sensor: WafSensor
    cves: set[str] = field(default_factory=set)
    workloads: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    action: str | None = None  # the action of the group's rule covering the sensor, if any

    @property
    def applied(self) -> bool:
        return self.action == "block"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "sensor": self.sensor.id,
            "title": self.sensor.title,
            "severity": self.sensor.severity,
            "cves": sorted(self.cves),
            "workloads": sorted(self.workloads),
            "images": sorted(self.images),
            "applied": self.applied,
            "action": self.action,
            "mode": self.mode,
            "auto": self.auto,
        }


def patch_action(group: Group, sensor: str) -> str | None:
    """What the group's ``waf`` rules do with ``sensor``: ``block``, ``alert`` or None (as the
    enforcer reads them: a block rule wins)."""
    actions = {w.action for w in group.waf_rules() if fnmatchcase(sensor, w.sensor)}
    return "block" if "block" in actions else "alert" if actions else None


def _endpoint(workload: str, labels: Mapping[str, str]) -> Endpoint:
    namespace, _, name = workload.rpartition("/")
    return Endpoint(ip="", name=name, namespace=namespace, labels=labels)


def groups_of_workload(policy: Policy, workload: str, labels: Mapping[str, str]) -> list[Group]:
    """The groups selecting a workload by namespace, labels and pod name (address selectors
    name things outside the cluster)."""
    ep = _endpoint(workload, labels)
    return [
        g
        for g in policy.spec.groups
        if not (g.selector.cidrs or g.selector.dns) and selects(g.selector, ep, {})
    ]


def proposals(
    policy: Policy,
    sensors: Iterable[WafSensor],
    exposures: Iterable[Exposure],
    labels: Mapping[str, Mapping[str, str]],
) -> list[Proposal]:
    """Every (group, sensor) whose sensor covers a vulnerability a workload of the group carries;
    ``labels`` are the workloads' labels where known. Ordered by group, then sensor."""
    covering: dict[str, list[WafSensor]] = {}
    for s in sensors:
        for cve in s.cves:
            covering.setdefault(cve, []).append(s)
    found: dict[tuple[str, str], Proposal] = {}
    groups_cache: dict[str, list[Group]] = {}
    for e in exposures:
        hits = [(cve, s) for cve in sorted(e.ids) for s in covering.get(cve, ())]
        if not hits:
            continue
        groups = groups_cache.get(e.workload)
        if groups is None:
            groups = groups_cache[e.workload] = groups_of_workload(
                policy, e.workload, labels.get(e.workload, {})
            )
        for g in groups:
            for cve, s in hits:
                p = found.get((g.name, s.id))
                if p is None:
                    p = found[(g.name, s.id)] = Proposal(
                        group=g.name,
                        mode=g.mode,
                        auto=policy.auto_patched(g),
                        sensor=s,
                        action=patch_action(g, s.id),
                    )
                p.cves.add(cve)
                p.workloads.add(e.workload)
                p.images.add(e.image)
    return [found[k] for k in sorted(found)]


def with_patch(policy: Policy, group: str, sensor: str, action: str = "block") -> Policy:
    """``policy`` with ``{sensor, action}`` in the group's ``waf`` rules (an existing rule naming
    exactly that sensor changes its action); ConfigError when the group is not there."""
    data = policy.model_dump(by_alias=True)
    found = [g for g in data["spec"]["groups"] if g["name"] == group]
    if not found:
        raise ConfigError(f"no group {group!r} in the policy")
    rules = found[0]["waf"]
    same = [r for r in rules if r["sensor"] == sensor]
    if same:
        same[0]["action"] = action
    else:
        rules.append({"sensor": sensor, "action": action})
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"waf: {msg}") from None
