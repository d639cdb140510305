"""AdmissionReview in, AdmissionReview out (``admission.k8s.io/v1`` and ``v1beta1``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stockade.admission.decisions import Decided, DecisionCache
from stockade.admission.engine import Decision, decide
from stockade.admission.interface import LookupBudget, VulnSource
from stockade.admission.limits import MAX_BODY
from stockade.admission.policy import Policy
from stockade.admission.workload import SUPPORTED_KINDS, workload_of
from stockade.model import Event, ResourceRef, Severity

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


class ReviewError(ValueError):
    """The body is not an AdmissionReview we can answer (HTTP 400)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    response: dict[str, Any]
    event: Event | None


def parse(body: bytes, *, max_body: int = MAX_BODY) -> Mapping[str, Any]:
    if len(body) > max_body:
        raise ReviewError(f"request body of {len(body)} bytes exceeds {max_body}")
    try:
        review = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    except RecursionError:  # the decoder's own nesting guard: hostile input, not our failure
        raise ReviewError("body is not JSON we accept: nested too deeply") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise ReviewError("body is not an AdmissionReview")
    if review.get("apiVersion") not in API_VERSIONS:
        raise ReviewError(f"unsupported apiVersion {review.get('apiVersion')!r}")
    request = review.get("request")
    if (
        not isinstance(request, dict)
        or not isinstance(request.get("uid"), str)
        or not request["uid"]
    ):
        raise ReviewError("AdmissionReview has no request.uid")
    return review


def _response(
    review: Mapping[str, Any], *, allowed: bool, message: str = "", warnings: tuple[str, ...] = ()
) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": allowed}
    if not allowed:
        resp["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    if warnings:
        resp["warnings"] = list(warnings)
    return {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": resp}


def answer(
    review: Mapping[str, Any],
    policy: Policy,
    source: VulnSource | None,
    budget: LookupBudget | None = None,
    *,
    decisions: DecisionCache | None = None,
    key: bytes | None = None,
) -> Outcome:
    """Decide one parsed review. Never raises for odd content: unknown things are allowed.

    ``budget`` is the review's one deadline for every lookup (default: from now). ``decisions``:
    recent decisions of ``policy`` to add this one to under ``key`` (only for a review whose
    lookups all answer from memory, see :mod:`stockade.admission.decisions`)."""
    req = review["request"]
    if not _decides(req):
        return Outcome(response=_response(review, allowed=True), event=None)
    decided = _decide(req, object_of(req), policy, source, budget)
    if decided is None:  # pragma: no cover - kind was checked by _decides
        return Outcome(response=_response(review, allowed=True), event=None)
    if decisions is not None and key is not None:
        decisions.put(key, decided)
    return _outcome(review, decided)


def recall(
    review: Mapping[str, Any], decisions: DecisionCache, key: bytes | None
) -> Outcome | None:
    """The outcome of ``review`` from the decision kept under ``key`` (None: decide it)."""
    if key is None or not _decides(review["request"]):
        return None
    decided = decisions.get(key)
    return None if decided is None else _outcome(review, decided)


def object_of(req: Mapping[str, Any]) -> Any:
    """The request's object; one without ``kind`` (as a client other than the API server may
    send it) takes the kind the request names (``request.kind.kind``)."""
    obj, kind = req.get("object"), req.get("kind")
    if (
        isinstance(obj, dict)
        and not obj.get("kind")
        and isinstance(kind, dict)
        and kind.get("kind")
    ):
        return {**obj, "kind": kind["kind"]}
    return obj


def _decides(req: Mapping[str, Any]) -> bool:
    """Whether the policy judges the request at all (else it is allowed as it is)."""
    obj = object_of(req)
    if req.get("operation") in ("DELETE", "CONNECT") or not isinstance(obj, dict):
        return False
    if not isinstance(obj.get("kind"), str) or obj["kind"] not in SUPPORTED_KINDS:
        return False  # a kind that is no string (a list, a mapping) names no workload
    sub = req.get("subResource")
    if req.get("operation") == "UPDATE" and not sub and _being_deleted(req.get("oldObject")):
        # Removing a finalizer (the garbage collector's foregroundDeletion, a controller's own)
        # is an UPDATE: denying it would leave the object Terminating for ever. Nothing new runs
        # from an object being deleted (kubelet and the controllers stop starting its pods), and
        # the stored old object, not the request, says so.
        return False
    return sub in (None, "", "ephemeralcontainers")


def _being_deleted(old: Any) -> bool:
    meta = old.get("metadata") if isinstance(old, dict) else None
    return isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))


def _outcome(review: Mapping[str, Any], decided: Decided) -> Outcome:
    d = decided.decision
    out = _response(review, allowed=d.allowed, message=d.message, warnings=d.warnings)
    event = _event(
        review["request"], decided.display, decided.namespace, decided.kind, decided.name, d
    )
    return Outcome(response=out, event=event)


def _decide(
    req: Mapping[str, Any],
    obj: Mapping[str, Any],
    policy: Policy,
    source: VulnSource | None,
    budget: LookupBudget | None,
) -> Decided | None:
    w = workload_of(obj, namespace=str(req.get("namespace") or ""))
    if w is None:
        return None
    if not w.name:
        w = replace(w, name=str(req.get("name") or ""))
    decision = decide(w, policy, source, budget)
    return Decided(decision, w.display(), w.namespace, w.kind, w.name)


def _event(
    req: Mapping[str, Any], display: str, ns: str, kind: str, name: str, d: Decision
) -> Event:
    info = req.get("userInfo")
    user: Mapping[str, Any] = info if isinstance(info, Mapping) else {}
    if not d.allowed:
        verdict, sev = "denied", Severity.HIGH
    elif d.violations:
        verdict, sev = "violation", Severity.MEDIUM
    else:
        verdict, sev = "allowed", Severity.NEGLIGIBLE
    return Event(
        kind=f"admission.{verdict}",
        message=f"{verdict}: {req.get('operation')} {display}"
        + (f" ({'; '.join(v.text() for v in d.violations)})" if d.violations else ""),
        severity=sev,
        source="admission",
        resource=ResourceRef(kind=kind.lower(), name=name, namespace=ns or None),
        data={
            "uid": req.get("uid"),
            "user": user.get("username"),
            "operation": req.get("operation"),
            "allowed": d.allowed,
            "allowed_by": d.allowed_by,
            "rules": [
                {"rule": v.rule, "mode": v.mode, "reasons": list(v.reasons)} for v in d.violations
            ],
            "error": d.error,
            "dry_run": bool(req.get("dryRun")),
        },
    )


def failure_response(review: Mapping[str, Any], policy: Policy, error: str) -> dict[str, Any]:
    """The answer when deciding itself failed: allow or deny per the failure policy."""
    # worded as Decision.message words a failed lookup, so one message says the same thing
    # whichever stage failed
    said = f"Stockade could not decide ({error}); failurePolicy is {policy.spec.failurePolicy}"
    if policy.spec.failurePolicy == "fail":
        return _response(review, allowed=False, message=said)
    return _response(review, allowed=True, warnings=(said[:250],))
