"""Running workload checks on one object (the admission webhook's entry) or on a set of objects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stockade.compliance.interface import CheckDetails
from stockade.compliance.workloads.model import (
    PROFILES,
    Context,
    PodView,
    Violation,
    WorkloadCheck,
)
from stockade.compliance.workloads.registry import CHECKS, NETPOL_CHECK
from stockade.k8s.objects import metadata, namespace_of, resource_of
from stockade.model import Finding, Pillar, ResourceRef, Status, UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """An object and where it came from (file and document number, or ``cluster``)."""

    obj: dict[str, Any]
    location: str = ""


def _profile(profile: str) -> str:
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r} (expected one of: {', '.join(PROFILES)})")
    return profile


def _finding(
    check: WorkloadCheck, resource: ResourceRef, bad: Sequence[Violation | str], location: str
) -> Finding:
    return Finding(
        id=check.id,
        pillar=Pillar.COMPLIANCE,
        title=check.title,
        severity=check.severity,
        resource=resource,
        status=Status.FAIL if bad else Status.PASS,
        details=CheckDetails(
            benchmark=check.benchmark,
            benchmark_id=check.benchmark_id,
            section=check.section,
            scored=True,
            evidence="; ".join(map(str, bad)),
            expected=check.expected,
            remediation=check.remediation,
            location=location,
        ),
        compliance=check.compliance,
    )


_EMPTY = Context()


def run_check(
    check: WorkloadCheck, obj: dict[str, Any], context: Context | None = None
) -> list[str] | None:
    """The offending values one check finds in one object, or None when it does not apply."""
    found = violations(check, obj, context)
    return None if found is None else [str(v) for v in found]


def violations(
    check: WorkloadCheck, obj: dict[str, Any], context: Context | None = None
) -> list[Violation] | None:
    """What one check finds in one object, each with what it is about (the container, the
    volume, the offending items), or None when the check does not apply to the object."""
    found = _run(check, obj, PodView.of(obj) if check.pod else None, context or _EMPTY)
    if found is None:
        return None
    return [v if isinstance(v, Violation) else Violation.of_text(v) for v in found]


def _run(
    check: WorkloadCheck, obj: dict[str, Any], view: PodView | None, ctx: Context
) -> Sequence[Violation | str] | None:
    if check.pod is not None:
        return None if view is None else check.pod(view, ctx)
    if check.obj is not None and obj.get("kind") in check.kinds:
        return check.obj(obj, ctx)
    return None


def check_object(
    obj: dict[str, Any],
    *,
    profile: str = "restricted",
    context: Context | None = None,
    location: str = "",
) -> list[Finding]:
    """Every applicable single-object check on ``obj``: a PASS or FAIL finding per check."""
    _profile(profile)
    resource = resource_of(obj)
    view = PodView.of(obj)  # once per object, shared by every pod check
    ctx = context or _EMPTY
    out = []
    for check in CHECKS:
        if not check.in_profile(profile):
            continue
        bad = _run(check, obj, view, ctx)
        if bad is not None:
            out.append(_finding(check, resource, bad, location))
    return out


def _as_manifest(item: dict[str, Any] | Manifest) -> Manifest:
    return item if isinstance(item, Manifest) else Manifest(obj=item)


def context_of(manifests: Iterable[Manifest]) -> Context:
    """What objects tell each other: the ServiceAccounts by (namespace, name)."""
    sas = {
        (namespace_of(m.obj), str(metadata(m.obj).get("name"))): m.obj
        for m in manifests
        if m.obj.get("kind") == "ServiceAccount"
    }
    return Context(service_accounts=sas)


def check_objects(
    items: Iterable[dict[str, Any] | Manifest], *, profile: str = "restricted"
) -> list[Finding]:
    """Single-object checks on each item, with cross-object context, plus namespace-level checks."""
    _profile(profile)
    manifests = [_as_manifest(i) for i in items]
    ctx = context_of(manifests)
    out: list[Finding] = []
    for m in manifests:
        out += check_object(m.obj, profile=profile, context=ctx, location=m.location)
    out += namespaces_without_netpol(manifests)
    return out


def namespaces_without_netpol(manifests: list[Manifest]) -> list[Finding]:
    """CIS 5.3.2 for every namespace named by the objects: one finding per namespace."""
    seen: dict[str, str] = {}
    covered: set[str] = set()
    for m in manifests:
        kind = m.obj.get("kind")
        if kind == "Namespace" and metadata(m.obj).get("name"):
            seen.setdefault(str(metadata(m.obj)["name"]), m.location)
        ns = namespace_of(m.obj)
        if ns:
            seen.setdefault(ns, m.location)
            if kind == "NetworkPolicy":
                covered.add(ns)
    return [
        _finding(
            NETPOL_CHECK,
            ResourceRef(kind="namespace", name=ns),
            [] if ns in covered else [f"namespace {ns} has no NetworkPolicy"],
            location,
        )
        for ns, location in sorted(seen.items())
    ]
