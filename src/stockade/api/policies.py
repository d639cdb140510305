"""Firewall and admission policies through the API: read, apply, diff, and the groups' modes.

A document is validated whole by the same parsers as ``stockade policy apply`` and ``stockade
admission policy set`` before anything changes; a wrong one is 400 with its line and the policy
in force stays. Every change is stored with a new configuration version in the same transaction
(so the enforcers following the controller pick it up, :mod:`stockade.api.agent_config`) and
audited with a summary of the policy before and after.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

import hashlib
from typing import TYPE_CHECKING, Any, Literal

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from stockade.admission.tables import load_policy_text, save_policy
from stockade.api import auth, virtual_patches
from stockade.api.access import Operator, Publish, Reader, StoreDep, document
from stockade.firewall.policy.files import diff_lines, dump, parse_texts, with_mode
from stockade.firewall.policy.store import (
    PolicyChanged,
    apply_policy,
    group_states,
    load_policy,
)
from stockade.model.redact import redact, redact_text
from stockade.store import Store

if TYPE_CHECKING:
    from stockade.firewall.policy.model import Policy

router = APIRouter()

FIREWALL_DOC = "policy"  # the name errors give the document: "policy:7: spec.rules[0]..."
ADMISSION_DOC = "admission-policy"


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    mode: Literal["discover", "monitor", "protect"]


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _wants_yaml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "yaml" in accept and "json" not in accept


# ------------------------------------------------------------------ firewall


def _firewall_in_force(store: Store) -> tuple["Policy", str, int] | None:
    row = load_policy(store)
    if row is None:
        return None
    return parse_texts([("stored policy", row[0])]), row[0], row[1]


def _firewall_summary(policy: "Policy", text: str, version: int) -> dict[str, Any]:
    return {
        "name": policy.metadata.name,
        "version": version,
        "modes": {g.name: g.mode for g in policy.spec.groups},
        "rules": [r.name for r in policy.spec.rules],
        "digest": _digest(text),
    }


def _firewall_document(text: str) -> tuple["Policy", str]:
    """The policy and the canonical text to store, masked (validated as it will be stored)."""
    policy = parse_texts([(FIREWALL_DOC, text)])
    stored = redact_text(dump(policy))
    return parse_texts([(FIREWALL_DOC, stored)]), stored


def _apply_firewall(
    store: Store, policy: "Policy", text: str, *, expected: int | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    found = _firewall_in_force(store)
    before = None if found is None else _firewall_summary(*found)
    try:
        version = apply_policy(store, policy, text, expected=expected)
    except PolicyChanged as exc:
        raise HTTPException(409, str(exc)) from None
    return before, _firewall_summary(policy, text, version)


@router.get("/api/v1/firewall/policy", response_model=None)
def get_firewall_policy(request: Request, store: StoreDep, _: Reader) -> Any:
    """The firewall policy in force, as stored: ``{"name", "version", "yaml"}``, or the YAML
    itself when the request accepts ``application/yaml``; 404 before one is applied."""
    found = _firewall_in_force(store)
    if found is None:
        raise HTTPException(404, "no firewall policy applied yet")
    policy, text, version = found
    if _wants_yaml(request):
        return PlainTextResponse(text, media_type="application/yaml")
    return redact({"name": policy.metadata.name, "version": version, "yaml": text})


@router.put("/api/v1/firewall/policy")
async def put_firewall_policy(
    request: Request, store: StoreDep, who: Operator, publish: Publish
) -> dict[str, Any]:
    """Apply a FirewallPolicy document (YAML or JSON): validated whole, then in force for every
    enforcer following the controller. Answers the new policy's summary."""
    policy, text = await run_in_threadpool(_firewall_document, await document(request))
    before, after = await run_in_threadpool(_apply_firewall, store, policy, text)
    await run_in_threadpool(
        auth.audit,
        store,
        who,
        "firewall_policy_applied",
        before=before,
        after=after,
        message=f"{who.who} applied firewall policy version {after['version']}",
        sink=publish,
    )
    # groups now set to ``virtualPatch: auto`` get their open proposals at once (a next version,
    # ``virtual_patch.applied`` events), not only when the next vulnerability facts arrive
    known = request.app.state.service.responder.known_images
    await run_in_threadpool(virtual_patches.auto_apply, store, known, publish)
    out: dict[str, Any] = redact(after)
    return out


@router.post("/api/v1/firewall/policy/diff")
async def diff_firewall_policy(request: Request, store: StoreDep, _: Reader) -> dict[str, Any]:
    """What applying the document would change: a unified diff of the canonical YAML."""
    new = (await run_in_threadpool(_firewall_document, await document(request)))[1]
    row = await run_in_threadpool(load_policy, store)
    lines = diff_lines(row[0] if row else "", new, old_name="running", new_name="document")
    out: dict[str, Any] = redact(
        {"version": row[1] if row else 0, "changed": bool(lines), "diff": "\n".join(lines)}
    )
    return out


@router.get("/api/v1/groups")
def list_groups(store: StoreDep, _: Reader) -> dict[str, Any]:
    """The firewall policy's groups with their modes (none before a policy is applied)."""
    found = _firewall_in_force(store)
    if found is None:
        return {"version": 0, "groups": []}
    out: dict[str, Any] = redact({"version": found[2], "groups": group_states(found[0])})
    return out


@router.put("/api/v1/groups/{name}/mode")
def put_group_mode(
    name: str, body: ModeBody, store: StoreDep, who: Operator, publish: Publish
) -> dict[str, Any]:
    """Switch one group to Discover, Monitor or Protect: a new version of the policy in force."""
    found = _firewall_in_force(store)
    if found is None:
        raise HTTPException(404, "no firewall policy applied yet")
    policy, _, version = found
    old = {g.name: g.mode for g in policy.spec.groups}.get(name)
    if old is None:
        raise HTTPException(404, f"no group {redact_text(name[:200])!r} in the policy")
    changed = with_mode(policy, name, body.mode)
    text = redact_text(dump(changed))
    # only over the version read: a concurrent edit is 409, never silently undone
    _, after = _apply_firewall(store, changed, text, expected=version)
    auth.audit(
        store,
        who,
        "group_mode_changed",
        before={"group": name, "mode": old, "version": version},
        after={"group": name, "mode": body.mode, "version": after["version"]},
        message=f"{who.who} switched group {name} from {old} to {body.mode}",
        sink=publish,
    )
    out: dict[str, Any] = redact(
        {"group": name, "mode": body.mode, "previous": old, "version": after["version"]}
    )
    return out


# ------------------------------------------------------------------ admission


def parse_policy(text: str, *, name: str) -> Any:
    """``stockade.admission.policy.parse_policy``, imported by the admission routes when they
    are first used: the admission engine it brings along is no part of the controller's start."""
    from stockade.admission.policy import parse_policy

    return parse_policy(text, name=name)


def _admission_canonical(text: str, name: str) -> str:
    policy = parse_policy(text, name=name)
    return yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False, width=120)


def _admission_in_force(store: Store) -> tuple[str, bool]:
    """The stored admission policy's text, and whether it is stored (else the built-in one)."""
    from stockade.admission.policy import DEFAULT_POLICY_YAML

    text = load_policy_text(store)
    return (text, True) if text is not None else (DEFAULT_POLICY_YAML, False)


def _admission_summary(text: str, *, stored: bool) -> dict[str, Any]:
    policy = parse_policy(text, name="stored admission policy")
    return {
        "name": policy.metadata.name,
        "mode": policy.spec.mode,
        "rules": [r.name for r in policy.spec.rules],
        "stored": stored,
        "digest": _digest(text),
    }


@router.get("/api/v1/admission/policy", response_model=None)
def get_admission_policy(request: Request, store: StoreDep, _: Reader) -> Any:
    """The admission policy in force (the stored one, else the built-in default):
    ``{"name", "mode", "stored", "yaml"}`` or the YAML itself for ``Accept: application/yaml``."""
    text, stored = _admission_in_force(store)
    if _wants_yaml(request):
        return PlainTextResponse(text, media_type="application/yaml")
    summary = _admission_summary(text, stored=stored)
    return redact({**summary, "yaml": text})


@router.put("/api/v1/admission/policy")
async def put_admission_policy(
    request: Request, store: StoreDep, who: Operator, publish: Publish
) -> dict[str, Any]:
    """Store an AdmissionPolicy document (YAML or JSON) as the policy in force, validated whole
    (the loader of ``stockade admission policy set``)."""
    text = redact_text(await document(request))
    await run_in_threadpool(parse_policy, text, name=ADMISSION_DOC)

    def apply() -> tuple[dict[str, Any], dict[str, Any]]:
        old, stored = _admission_in_force(store)
        before = _admission_summary(old, stored=stored)
        save_policy(store, "default", text)
        return before, _admission_summary(text, stored=True)

    before, after = await run_in_threadpool(apply)
    await run_in_threadpool(
        auth.audit,
        store,
        who,
        "admission_policy_applied",
        before=before,
        after=after,
        sink=publish,
    )
    out: dict[str, Any] = redact(after)
    return out


@router.post("/api/v1/admission/policy/diff")
async def diff_admission_policy(request: Request, store: StoreDep, _: Reader) -> dict[str, Any]:
    """What storing the document would change, compared in canonical form (comments and layout
    aside)."""
    new = await run_in_threadpool(_admission_canonical, await document(request), ADMISSION_DOC)
    old = (await run_in_threadpool(_admission_in_force, store))[0]
    lines = diff_lines(
        _admission_canonical(old, "stored admission policy"),
        new,
        old_name="running",
        new_name="document",
    )
    out: dict[str, Any] = redact({"changed": bool(lines), "diff": "\n".join(lines)})
    return out
