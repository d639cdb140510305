"""The firewall policy as YAML (Kubernetes-shaped, lives in git) and its validated form.

```yaml
apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: shop}
spec:
  groups:
    - name: cde                                   # a slug: letters, digits, '-', '.'
      selector: {namespace: shop, labels: {pci: cde}}
      # also: expressions: [{key: tier, operator: In, values: [api, web]}]  (In, NotIn, Exists, DoesNotExist)
      mode: protect                               # discover | monitor | protect
      dlp: [{sensor: dlp.payment_card, action: block}]
      waf: [{sensor: waf.log4shell, action: block}]  # or "builtin": the whole pack (docs/waf.md)
      virtualPatch: auto                          # propose | auto (docs/waf.md); default: spec's
      requireTLS: inbound                         # none | inbound | outbound | both (blocks)
      # or {direction: inbound, action: alert}, or a list of those (one per direction)
    - name: partner
      selector: {cidrs: [198.51.100.0/24]}
    - name: stripe
      selector: {dns: [api.stripe.com]}
  virtualPatch: propose                           # every group's default: propose | auto
  rules:                                          # first match wins
    - {name: web-to-cde, from: [web], to: [cde], ports: [tcp/8443], protocols: [proto.tls], action: allow}
    - {name: no-crm-to-db, from: [crm], to: [db], action: deny}
```
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from stockade.config import repeated

Mode = Literal["discover", "monitor", "protect"]
MODE_RANK = {"discover": 0, "monitor": 1, "protect": 2}
_SLUG = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?\Z")
_HOST = re.compile(
    r"^(?=.{1,253}\Z)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\Z"
)
ANY = "any"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LabelExpression(_Strict):
    """One Kubernetes set-based requirement on a label (a LabelSelector's matchExpressions):
    ``In``/``NotIn`` a list of values, ``Exists``/``DoesNotExist``; ``NotIn`` also holds when
    the label is absent."""

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values(self) -> LabelExpression:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"label expression {self.key!r} {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"label expression {self.key!r} {self.operator} takes no values")
        return self

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class Selector(_Strict):
    """Which endpoints belong to a group; every field given must match (AND)."""

    namespace: str | None = None  # glob on the Kubernetes namespace
    labels: dict[str, str] = Field(default_factory=dict)
    # set-based label requirements, all of which must hold (Kubernetes matchExpressions)
    expressions: list[LabelExpression] = Field(default_factory=list)
    pods: list[str] = Field(default_factory=list)  # globs on the pod name
    cidrs: list[str] = Field(default_factory=list)
    dns: list[str] = Field(
        default_factory=list
    )  # names resolved on the node when rules are applied

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for c in v:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {c!r}") from exc
        return v

    @field_validator("dns")
    @classmethod
    def _dns(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _HOST.match(name):
                raise ValueError(f"not a DNS name: {name!r}")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        pod_fields = self.namespace or self.labels or self.expressions or self.pods
        if not (pod_fields or self.cidrs or self.dns):
            raise ValueError(
                "a selector needs at least one of namespace, labels, expressions, pods, cidrs, dns"
            )
        if (self.cidrs or self.dns) and pod_fields:
            raise ValueError(
                "cidrs/dns select addresses outside the cluster; do not mix them with namespace/labels/pods"
            )
        return self


class DataRule(_Strict):
    sensor: str  # a DLP sensor id (dlp.payment_card) or a glob (dlp.*)
    action: Literal["alert", "block"] = "alert"


class WafRule(_Strict):
    sensor: str  # a WAF sensor id (waf.log4shell) or a glob (waf.*)
    action: Literal["alert", "block"] = "block"

    @field_validator("sensor")
    @classmethod
    def _waf(cls, v: str) -> str:
        if not v.startswith("waf."):
            raise ValueError(f"WAF rule sensor {v!r} must be a waf.* sensor id or glob")
        return v


class TlsRequirement(_Strict):
    """Clear text into (``inbound``) or out of (``outbound``) the group: ``block`` (in protect
    mode; monitor records it) or only ``alert``."""

    direction: Literal["inbound", "outbound", "both"]
    action: Literal["alert", "block"] = "block"
    # TLS below this version counts as not encrypted enough (PCI DSS: strong cryptography)
    minVersion: Literal["TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"] = "TLS1.2"


class Group(_Strict):
    name: str
    selector: Selector
    mode: Mode = "monitor"
    dlp: list[DataRule] = Field(default_factory=list)
    # virtual patches; "builtin" is short for [{sensor: "waf.*", action: block}] (the whole pack)
    waf: list[WafRule] = Field(default_factory=list)
    # the controller proposes a virtual patch for the CVEs of the group's images (propose), or
    # adds it to the group's waf rules itself when the vulnerability facts arrive (auto); unset:
    # the policy's spec.virtualPatch
    virtualPatch: Literal["propose", "auto"] | None = None
    # the string form is the original one: that direction, action block
    requireTLS: (
        Literal["none", "inbound", "outbound", "both"] | TlsRequirement | list[TlsRequirement]
    ) = "none"

    def waf_rules(self) -> tuple[WafRule, ...]:
        return tuple(self.waf)

    @field_validator("waf", mode="before")
    @classmethod
    def _builtin(cls, v: object) -> object:
        if isinstance(v, str):
            if v != "builtin":
                raise ValueError("waf must be 'builtin' or a list of {sensor, action} rules")
            return [{"sensor": "waf.*", "action": "block"}]
        return v

    def tls_requirements(self) -> tuple[TlsRequirement, ...]:
        req = self.requireTLS
        if isinstance(req, str):
            return () if req == "none" else (TlsRequirement(direction=req),)
        return (req,) if isinstance(req, TlsRequirement) else tuple(req)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if v == ANY or not _SLUG.match(v):
            raise ValueError(
                f"group name {v!r} must be a lowercase slug (letters, digits, '-', '.'), not 'any'"
            )
        return v


class PortRange(_Strict):
    l4: Literal["tcp", "udp", "icmp", "any"]
    low: int
    high: int

    def covers(self, l4: str, port: int) -> bool:
        return (self.l4 == "any" or self.l4 == l4) and self.low <= port <= self.high

    def text(self) -> str:
        if self.low == 0 and self.high == 65535:
            return self.l4
        span = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{self.l4}/{span}" if self.l4 != "any" else span


def parse_port(text: str) -> PortRange:
    """``any`` (also ICMP and every other IP protocol), ``8080`` (TCP), ``tcp/8080``, ``udp/53``,
    ``tcp/8000-8100``, ``tcp`` (every TCP port), ``icmp`` (ICMP and ICMPv6: echo and the other
    queries; errors follow the connection they report on)."""
    t = str(text).strip().lower()
    if t == ANY:
        return PortRange(l4="any", low=0, high=65535)
    l4, _, span = t.rpartition("/")
    if not l4 and span in ("tcp", "udp", "icmp"):
        return PortRange(l4=span, low=0, high=65535)  # type: ignore[arg-type]
    if l4 == "icmp":
        raise ValueError(f"port {text!r}: icmp has no ports (write icmp)")
    if not l4 and "/" in t:
        raise ValueError(f"port {text!r}: protocol missing before '/'")
    l4 = l4 or "tcp"
    if l4 not in ("tcp", "udp"):
        raise ValueError(f"port {text!r}: protocol must be tcp or udp")
    low_s, dash, high_s = span.partition("-")
    if not low_s.strip().isdigit() or (dash and not high_s.strip().isdigit()):
        raise ValueError(f"port {text!r} is not a number or range")
    low, high = int(low_s), int(high_s or low_s)
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"port {text!r} is out of range 1-65535")
    return PortRange(l4=l4, low=low, high=high)  # type: ignore[arg-type]


class Rule(_Strict):
    name: str
    from_: list[str] = Field(alias="from", min_length=1)
    to: list[str] = Field(min_length=1)
    ports: list[str] = Field(default_factory=lambda: [ANY])
    protocols: list[str] = Field(
        default_factory=list
    )  # application protocols (proto.http, ...); empty: any
    action: Literal["allow", "deny"] = "allow"

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        # The name travels into kernel rule comments and events: a slug, so nothing can be injected
        if not _SLUG.match(v):
            raise ValueError(
                f"rule name {v!r} must be a lowercase slug (letters, digits, '-', '.'; 63 at most)"
            )
        return v

    @field_validator("ports", mode="before")
    @classmethod
    def _numbers(cls, v: object) -> object:
        # ``ports: [8080]`` is the documented TCP port, an int in YAML
        if isinstance(v, list):
            return [str(p) if isinstance(p, int) and not isinstance(p, bool) else p for p in v]
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        for p in v:
            parse_port(p)
        return v

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: list[str]) -> list[str]:
        from stockade.network.protocols import SLUGS

        for p in v:
            if p not in SLUGS:
                raise ValueError(f"unknown application protocol {p!r} (known: {', '.join(SLUGS)})")
        return v

    def port_ranges(self) -> list[PortRange]:
        return [parse_port(p) for p in self.ports]


class Metadata(_Strict):
    name: str = "default"


class Spec(_Strict):
    groups: list[Group] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    virtualPatch: Literal["propose", "auto"] = "propose"  # the groups' default

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Spec:
        if info.context and info.context.get("partial"):
            return self  # one file of several: references are checked on the merged policy
        names = [g.name for g in self.groups]
        dup = repeated(names)
        if dup:
            raise ValueError(f"group names must be unique: {', '.join(dup)}")
        dup = repeated(r.name for r in self.rules)
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(dup)}")
        known = set(names) | {ANY}
        for r in self.rules:
            for g in (*r.from_, *r.to):
                if g not in known:
                    raise ValueError(f"rule {r.name!r} names unknown group {g!r}")
        return self


class Policy(_Strict):
    apiVersion: Literal["stockade.dev/v1"] = "stockade.dev/v1"
    kind: Literal["FirewallPolicy"] = "FirewallPolicy"
    metadata: Metadata = Field(default_factory=Metadata)
    spec: Spec = Field(default_factory=Spec)

    def auto_patched(self, group: Group) -> bool:
        """Whether the controller applies the group's virtual patches itself."""
        return (group.virtualPatch or self.spec.virtualPatch) == "auto"

    def group(self, name: str) -> Group:
        for g in self.spec.groups:
            if g.name == name:
                return g
        raise KeyError(name)
