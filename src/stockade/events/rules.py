"""Response rules: what to do when an event arrives, written as data (NeuVector's semantics).

```yaml
apiVersion: stockade.dev/v1
kind: ResponseRules
metadata: {name: default}
spec:
  rules:
    - name: card-leak
      mode: active                 # monitor (the default) only says what it would do
      cooldown: 10m                # per (rule, workload); 0s (none) by default
      match:                       # types ANDed, values within one type ORed
        categories: [dlp]          # kind before the first dot
        events: ["dlp.*"]          # globs on the whole kind
        level: high                # severity at or above
        namespaces: [shop, "pay-*"]
        groups: [cde]
        sensors: [dlp.payment_card]
        checks: ["k8s.apiserver.*"]
        vulnerabilities: {critical: 1, highWithFix: 5, cves: [CVE-2024-3094]}
      actions: [quarantine, notify] # quarantine | notify | suppress | capture
      notify: [soc-webhook]        # target names, with the notify action
      capture: {duration: 30s, maxBytes: 10000000, filter: "tcp port 8080"}  # optional
```

Every enabled rule is evaluated against every event (no first match wins). Within
``vulnerabilities`` each key is its own type (ANDed); the ``cves`` listed are ORed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import translate
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stockade.config import load_yaml_model, parse_yaml, repeated, validate
from stockade.model import Event, ResourceRef, Severity, StockadeError
from stockade.model.duration import parse_duration

RuleMode = Literal["monitor", "active"]
ActionKind = Literal["quarantine", "notify", "suppress", "capture"]

_SLUG = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?\Z")
_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,253}\Z")  # a glob or value: no control characters
_VULN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
MAX_VALUES = 256  # per condition list; bounds the cost of one event against one rule
MAX_RULES = 1000
MAX_COOLDOWN = timedelta(days=30)
# A packet capture asked for by a rule (or through the API): hard bounds, whoever asks.
MAX_CAPTURE_SECONDS = 600
MAX_CAPTURE_BYTES = 32 * 1024 * 1024
MIN_CAPTURE_BYTES = 40  # a pcap header and one record header
MAX_FILTER = 4096  # characters of a capture filter (tcpdump syntax)
_FILTER = re.compile(r"^[\x20-\x7e]{1,4096}\Z")  # printable ASCII: libpcap compiles it later

# Resource kinds that are not workloads: nothing to quarantine when an event is about them.
_NOT_WORKLOADS = frozenset(
    {"external", "image", "package", "registry", "file", "node", "host", "manifest", "connection"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _patterns(values: list[str], what: str) -> list[str]:
    for v in values:
        if not _PATTERN.match(v):
            raise ValueError(f"{what} {v[:60]!r} must be 1-253 printable characters")
    return values


PatternList = list[str]


class VulnCriteria(_Strict):
    """The workload image's vulnerability summary meets the criteria (each key ANDed)."""

    critical: int | None = Field(default=None, ge=1, le=1_000_000)  # critical findings >= N
    highWithFix: int | None = Field(default=None, ge=1, le=1_000_000)  # high+ with a fix >= N
    cves: list[str] = Field(default_factory=list, max_length=MAX_VALUES)  # any of these present

    @field_validator("cves")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for i in v:
            if not _VULN_ID.match(i):
                raise ValueError(f"not a vulnerability id: {i[:60]!r}")
        return v

    @model_validator(mode="after")
    def _something(self) -> VulnCriteria:
        if self.critical is None and self.highWithFix is None and not self.cves:
            raise ValueError("vulnerabilities needs critical, highWithFix or cves")
        return self


def check_capture_filter(text: str) -> str:
    """The filter's shape (printable ASCII, at most 4096 characters); libpcap compiles it where a
    capture is made (the controller checks it when it takes the rules)."""
    if not _FILTER.match(text):
        raise ValueError(
            f"capture filter {text[:60]!r} must be 1-{MAX_FILTER} printable characters"
        )
    return text


class CaptureSpec(_Strict):
    """What the ``capture`` action records: the event's workload, bounded in time and size."""

    duration: str = "30s"
    maxBytes: int = Field(
        default=10_000_000, ge=MIN_CAPTURE_BYTES, le=MAX_CAPTURE_BYTES, strict=True
    )
    filter: str | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"duration {v!r} needs a unit (30s, 5m)")
        try:
            span = parse_duration(v, allow_zero=False)
        except StockadeError as exc:
            raise ValueError(exc.message) from None
        if span.total_seconds() > MAX_CAPTURE_SECONDS:
            raise ValueError(f"capture duration {v!r} is longer than {MAX_CAPTURE_SECONDS}s")
        return v

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: str | None) -> str | None:
        return None if v is None else check_capture_filter(v)

    @property
    def seconds(self) -> float:
        return parse_duration(self.duration, allow_zero=False).total_seconds()


class Match(_Strict):
    categories: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    events: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    level: str | None = None
    namespaces: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    groups: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    sensors: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    checks: PatternList = Field(default_factory=list, max_length=MAX_VALUES)
    vulnerabilities: VulnCriteria | None = None

    @field_validator("categories", "events", "namespaces", "groups", "sensors", "checks")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        return _patterns(v, "value")

    @field_validator("level")
    @classmethod
    def _level(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(Severity.parse(v))
        except StockadeError as exc:
            raise ValueError(exc.message) from None

    def is_empty(self) -> bool:
        return not (
            self.categories
            or self.events
            or self.level
            or self.namespaces
            or self.groups
            or self.sensors
            or self.checks
            or self.vulnerabilities
        )


class Rule(_Strict):
    name: str
    enabled: bool = True
    mode: RuleMode = "monitor"
    cooldown: str = "0s"
    description: str | None = Field(default=None, max_length=1000)
    match: Match
    actions: list[ActionKind] = Field(min_length=1, max_length=4)
    notify: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    capture: CaptureSpec | None = None  # with the capture action (its defaults without one)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(
                f"rule name {v[:60]!r} must be a lowercase slug (letters, digits, '-', '.')"
            )
        return v

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"cooldown {v!r} needs a unit (30s, 5m, 12h, 7d)")
        try:
            span = parse_duration(v)
        except StockadeError as exc:
            raise ValueError(exc.message) from None
        if span > MAX_COOLDOWN:
            raise ValueError(f"cooldown {v!r} is longer than 30 days")
        return v

    @field_validator("notify")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _SLUG.match(name):
                raise ValueError(f"target name {name[:60]!r} must be a lowercase slug")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.match.is_empty():
            raise ValueError(f"rule {self.name!r} needs at least one condition in match")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"rule {self.name!r} lists an action twice")
        if ("notify" in self.actions) != bool(self.notify):
            raise ValueError(
                f"rule {self.name!r}: the notify action and a notify list of targets go together"
            )
        if self.capture is not None and "capture" not in self.actions:
            raise ValueError(f"rule {self.name!r}: capture settings without the capture action")
        if "notify" in self.actions and "suppress" in self.actions:
            raise ValueError(f"rule {self.name!r} cannot both notify and suppress notifications")
        return self


class Metadata(_Strict):
    name: str = "default"


class Spec(_Strict):
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _unique_names(self) -> Spec:
        dup = repeated(r.name for r in self.rules)
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(dup)}")
        return self


class RulesFile(_Strict):
    apiVersion: Literal["stockade.dev/v1"]
    kind: Literal["ResponseRules"]
    metadata: Metadata = Field(default_factory=Metadata)
    spec: Spec = Field(default_factory=Spec)


# ---------------------------------------------------------------- the compiled form


def _compile(globs: Iterable[str]) -> re.Pattern[str] | None:
    parts = [translate(g) for g in globs]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledRule:
    """A rule with its globs compiled once (a burst evaluates it thousands of times)."""

    spec: Rule
    cooldown: timedelta
    level: Severity | None
    categories: re.Pattern[str] | None
    events: re.Pattern[str] | None
    namespaces: re.Pattern[str] | None
    groups: re.Pattern[str] | None
    sensors: re.Pattern[str] | None
    checks: re.Pattern[str] | None

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def build(cls, rule: Rule) -> CompiledRule:
        m = rule.match
        return cls(
            spec=rule,
            cooldown=parse_duration(rule.cooldown),
            level=Severity.parse(m.level) if m.level else None,
            categories=_compile(m.categories),
            events=_compile(m.events),
            namespaces=_compile(m.namespaces),
            groups=_compile(m.groups),
            sensors=_compile(m.sensors),
            checks=_compile(m.checks),
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The enabled rules of one rules file, compiled, in file order."""

    name: str
    rules: tuple[CompiledRule, ...]
    disabled: tuple[str, ...] = ()

    @classmethod
    def from_file(cls, doc: RulesFile) -> RuleSet:
        enabled = tuple(CompiledRule.build(r) for r in doc.spec.rules if r.enabled)
        disabled = tuple(r.name for r in doc.spec.rules if not r.enabled)
        return cls(doc.metadata.name, enabled, disabled)


def load_rules(path: Path) -> RuleSet:
    """Read and validate a ResponseRules file; any problem is one ``file:line: ...`` error."""
    return RuleSet.from_file(load_yaml_model(RulesFile, path))


def parse_rules_file(text: str, *, name: str) -> RulesFile:
    """A ResponseRules document from YAML (or JSON) text, validated whole."""
    value, node = parse_yaml(text, name=name)
    return validate(RulesFile, value, node, name=name)


def parse_rules(text: str, *, name: str) -> RuleSet:
    return RuleSet.from_file(parse_rules_file(text, name=name))


def dump_rules(doc: RulesFile) -> str:
    """The canonical YAML of a rules document (every setting spelled out, comments dropped): what
    the controller stores, exports and diffs."""
    import yaml

    data = doc.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True)


# ---------------------------------------------------------------- vulnerability summaries


@dataclass(frozen=True, slots=True, kw_only=True)
class VulnSummary:
    """What the controller knows of one image's vulnerabilities (adapted from the scan store)."""

    image: str
    counts: Mapping[Severity, int] = field(default_factory=dict)  # all findings by severity
    fixable_counts: Mapping[Severity, int] = field(default_factory=dict)  # those with a fix
    ids: frozenset[str] = frozenset()  # every vulnerability id and alias present

    def count_at_least(self, severity: Severity, *, fixable_only: bool = False) -> int:
        source = self.fixable_counts if fixable_only else self.counts
        return sum(n for sev, n in source.items() if sev >= severity)

    def worst(self) -> Severity:
        present = [sev for sev, n in self.counts.items() if n > 0]
        return max(present, default=Severity.UNKNOWN)


def meets(criteria: VulnCriteria, vulns: VulnSummary | None) -> bool:
    """Whether the summary meets every given criterion; no summary meets none."""
    if vulns is None:
        return False
    if criteria.critical is not None and vulns.counts.get(Severity.CRITICAL, 0) < criteria.critical:
        return False
    if criteria.highWithFix is not None and (
        vulns.count_at_least(Severity.HIGH, fixable_only=True) < criteria.highWithFix
    ):
        return False
    return not criteria.cves or any(c in vulns.ids for c in criteria.cves)


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One thing a rule asks for because of one event."""

    rule: str
    kind: ActionKind
    mode: RuleMode
    event: Event
    workload: str | None  # "namespace/name" of the event's workload, None when it names none
    targets: tuple[str, ...] = ()  # notify only
    cooldown: timedelta = timedelta(0)
    capture: CaptureSpec | None = None  # capture only


def workload_key(ref: ResourceRef | None) -> str | None:
    """The workload an event is about, as ``namespace/name`` (None for images, nodes, ...)."""
    if ref is None or ref.kind in _NOT_WORKLOADS or not ref.name:
        return None
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


def _strings(*values: Any) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out += [x for x in v if isinstance(x, str)]
    return out


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the conditions look at, read from an event once."""

    kind: str
    category: str
    severity: Severity
    namespaces: list[str]
    groups: list[str]
    sensors: list[str]
    checks: list[str]

    @classmethod
    def of(cls, event: Event) -> _Facts:
        data = event.data if isinstance(event.data, Mapping) else {}
        ref = event.resource
        finding = data.get("finding")
        finding_id = finding.get("id") if isinstance(finding, Mapping) else finding
        return cls(
            kind=event.kind,
            category=event.kind.split(".", 1)[0],
            severity=event.severity,
            namespaces=_strings(ref.namespace if ref else None, data.get("namespace")),
            groups=_strings(getattr(event, "group", None), data.get("group"), data.get("groups")),
            sensors=_strings(data.get("sensor"), data.get("sensors")),
            checks=_strings(
                data.get("check"), data.get("check_id"), finding_id, data.get("checks")
            ),
        )


def _any(pattern: re.Pattern[str] | None, values: list[str]) -> bool:
    return pattern is None or any(pattern.fullmatch(v) for v in values)


def matches(rule: CompiledRule, event: Event, vulns: VulnSummary | None = None) -> bool:
    """Whether every condition type of the rule holds for the event (types ANDed, values ORed)."""
    return _matches(rule, _Facts.of(event), vulns)


def _matches(rule: CompiledRule, f: _Facts, vulns: VulnSummary | None) -> bool:
    criteria = rule.spec.match.vulnerabilities
    return (
        (rule.level is None or f.severity >= rule.level)
        and _any(rule.categories, [f.category])
        and _any(rule.events, [f.kind])
        and _any(rule.namespaces, f.namespaces)
        and _any(rule.groups, f.groups)
        and _any(rule.sensors, f.sensors)
        and _any(rule.checks, f.checks)
        and (criteria is None or meets(criteria, vulns))
    )


def may_match(rule_set: RuleSet, kind: str, severity: Severity) -> bool:
    """Whether some enabled rule could match an event of this kind and severity: the conditions
    an event's stored columns decide (level, category, event name) hold for at least one rule.
    The conditions read from its data (namespaces, groups, sensors, checks, vulnerabilities) are
    left to :func:`evaluate`, so an event this says no to is one no rule matches."""
    category = kind.split(".", 1)[0]
    return any(
        (rule.level is None or severity >= rule.level)
        and _any(rule.categories, [category])
        and _any(rule.events, [kind])
        for rule in rule_set.rules
    )


def evaluate(rule_set: RuleSet, event: Event, vulns: VulnSummary | None = None) -> list[Action]:
    """The actions every enabled rule that matches the event asks for, in file order.

    ``vulns`` is the summary of the image of the event's workload, for rules with vulnerability
    criteria (without one those rules do not match)."""
    facts = _Facts.of(event)
    workload = workload_key(event.resource)
    out: list[Action] = []
    for rule in rule_set.rules:
        if not _matches(rule, facts, vulns):
            continue
        for kind in rule.spec.actions:
            out.append(
                Action(
                    rule=rule.name,
                    kind=kind,
                    mode=rule.spec.mode,
                    event=event,
                    workload=workload,
                    targets=tuple(rule.spec.notify) if kind == "notify" else (),
                    cooldown=rule.cooldown,
                    capture=(rule.spec.capture or CaptureSpec()) if kind == "capture" else None,
                )
            )
    return out


# ---------------------------------------------------------------- scans


def _digest(image: str) -> str | None:
    if "@" in image:
        return image.rsplit("@", 1)[1]
    return image if image.startswith("sha256:") else None


def same_image(a: str, b: str) -> bool:
    """Two references name the same image: equal, or carrying the same digest."""
    if a == b:
        return True
    da, db = _digest(a), _digest(b)
    return da is not None and da == db


def scan_event(workload: str, image: str, vulns: VulnSummary) -> Event:
    """The event a scan result makes for one running workload of the scanned image."""
    namespace, _, name = workload.rpartition("/")
    critical = vulns.counts.get(Severity.CRITICAL, 0)
    fixable = vulns.count_at_least(Severity.HIGH, fixable_only=True)
    return Event(
        kind="scan.image_vulnerable",
        message=f"{workload} runs {image}: {critical} critical, {fixable} high or critical "
        "with a fix",
        severity=vulns.worst(),
        source="response",
        resource=ResourceRef(
            kind="workload", name=name, namespace=namespace or None, digest=_digest(image)
        ),
        data={"image": image, "critical": critical, "high_with_fix": fixable},
    )


def evaluate_scan(
    rule_set: RuleSet, image: str, vulns: VulnSummary, running: Mapping[str, str]
) -> list[Action]:
    """The actions rules with vulnerability criteria ask for now that ``image`` has the summary
    ``vulns``: for every running workload (``namespace/name`` -> image reference or digest) whose
    image it is. Each workload gets a ``scan.image_vulnerable`` event that the other conditions
    (namespaces, level, ...) are checked against; the actions carry it."""
    rules = [r for r in rule_set.rules if r.spec.match.vulnerabilities is not None]
    if not rules:
        return []
    subset = RuleSet(rule_set.name, tuple(rules))
    out: list[Action] = []
    for workload, running_image in sorted(running.items()):
        if same_image(running_image, image):
            out += evaluate(subset, scan_event(workload, image, vulns), vulns)
    return out
