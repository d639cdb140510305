"""Deciding one workload against a policy."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from stockade.admission.criteria import CRITERIA, SignatureLookup, VulnLookup
from stockade.admission.images import matches_any
from stockade.admission.interface import (
    ImageVulns,
    LookupBudget,
    SignatureRequirement,
    SignatureSource,
    SignatureVerdict,
    VulnSource,
    Workload,
)
from stockade.admission.policy import Policy, Rule


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    rule: str
    mode: str  # "monitor" or "protect"
    reasons: tuple[str, ...]
    message: str | None = None

    def text(self) -> str:
        head = self.message or "; ".join(self.reasons)
        return f"rule {self.rule!r}: {head}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    allowed: bool
    violations: tuple[Violation, ...] = ()
    allowed_by: str | None = None  # an allow rule that admitted the object outright
    error: str | None = None  # an internal problem handled by the failure policy
    failure_policy: str = "ignore"  # the policy's failurePolicy, named when error is set
    warnings: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str:
        """Why the object is denied: every protect rule that fired, then any lookup that failed.

        A denial by a rule names the rule even when a lookup failed for another image; the failure
        policy is named only where it decided (no rule denied)."""
        denied = [v.text() for v in self.violations if v.mode == "protect"]
        if denied:
            text = "denied by Stockade: " + " | ".join(denied)
            if self.error:
                text += f" (also could not decide: {self.error})"
            return text
        if self.error and not self.allowed:
            return (
                f"Stockade could not decide ({self.error}); failurePolicy is {self.failure_policy}"
            )
        return ""


def _matches(rule: Rule, w: Workload) -> bool:
    m = rule.match
    if not any(fnmatch.fnmatchcase(w.namespace, p) for p in m.namespaces):
        return False
    if any(fnmatch.fnmatchcase(w.namespace, p) for p in m.excludeNamespaces):
        return False
    if not any(fnmatch.fnmatchcase(w.kind, p) for p in m.kinds):
        return False
    if not all(w.labels.get(k) == v for k, v in m.labels.items()):
        return False
    if m.images != ["*"]:
        return all(matches_any(c.image, m.images) for c in w.containers)
    return True


def _fires(
    rule: Rule, w: Workload, lookup: VulnLookup, signatures: SignatureLookup
) -> tuple[str, ...]:
    reasons: list[str] = []
    for key, params in rule.criteria.items():
        crit = CRITERIA[key]
        found = crit.check(params, w, signatures if crit.needs_signatures else lookup)
        if not found:
            return ()
        reasons.extend(found)
    return tuple(reasons)


def needs_vulns(policy: Policy) -> bool:
    return any(CRITERIA[k].needs_vulns for r in policy.spec.rules for k in r.criteria)


def needs_signatures(policy: Policy) -> bool:
    return any(CRITERIA[k].needs_signatures for r in policy.spec.rules for k in r.criteria)


def decide(
    w: Workload, policy: Policy, source: VulnSource | None, budget: LookupBudget | None = None
) -> Decision:
    """Apply allow rules first (first match admits), then every deny rule; monitor rules warn.

    All lookups share one ``budget`` (by default ``scanBudgetSeconds`` from now)."""
    if budget is None:
        budget = LookupBudget(policy.spec.scanBudgetSeconds)
    cache: dict[str, ImageVulns | None] = {}
    errors: list[str] = []

    def lookup(image: str) -> ImageVulns | None:
        if image not in cache:
            if source is None:
                cache[image] = None
            else:
                try:
                    cache[image] = source.summary(image, budget=budget)
                except Exception as exc:
                    errors.append(f"vulnerability lookup for {image} failed: {exc}")
                    cache[image] = None
        return cache[image]

    verdicts: dict[tuple[str, SignatureRequirement], SignatureVerdict | None] = {}

    def signatures(image: str, requirement: SignatureRequirement) -> SignatureVerdict | None:
        key = (image, requirement)
        if key not in verdicts:
            verdicts[key] = None
            if not isinstance(source, SignatureSource):
                errors.append(f"cannot verify the signatures of {image}: no registry access")
            else:
                try:
                    verdicts[key] = source.signatures(image, requirement, budget=budget)
                except Exception as exc:
                    errors.append(f"signature verification for {image} failed: {exc}")
        return verdicts[key]

    for rule in policy.spec.rules:
        if rule.action == "allow" and _matches(rule, w):
            return Decision(allowed=True, allowed_by=rule.name)
    violations: list[Violation] = []
    for rule in policy.spec.rules:
        if rule.action != "deny" or not _matches(rule, w):
            continue
        reasons = _fires(rule, w, lookup, signatures)
        if reasons:
            mode = rule.mode or policy.spec.mode
            violations.append(
                Violation(rule=rule.name, mode=mode, reasons=reasons, message=rule.message)
            )
    warnings = tuple(f"[monitor] {v.text()}"[:250] for v in violations if v.mode == "monitor")
    denied = any(v.mode == "protect" for v in violations)
    if errors:
        fail = policy.spec.failurePolicy == "fail"
        return Decision(
            allowed=not denied and not fail,
            violations=tuple(violations),
            error="; ".join(errors),
            failure_policy=policy.spec.failurePolicy,
            warnings=(*warnings, f"Stockade: {errors[0]}"[:250]),
        )
    return Decision(allowed=not denied, violations=tuple(violations), warnings=warnings)
