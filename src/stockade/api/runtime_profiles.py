"""Process profiles through the controller's API: the applied set (read, apply, diff), versioned
on the agents' configuration sequence like the firewall policy, and the profiles each agent
learned in Discover and sent up.

A document is validated whole by the parser of ``stockade runtime profile apply`` before
anything changes (a wrong one is 400 naming its line); the applied set is stored in canonical form
through the masking gate, with a new version stamped in the same transaction, so ``runtime
watch --controller`` picks it up by version (:mod:`stockade.api.agent_config`); every change is
audited.
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

import hashlib
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from stockade.api import auth
from stockade.api.access import Agent, Operator, Publish, Reader, StoreDep, document
from stockade.model.redact import redact, redact_text
from stockade.runtime.tables import learned_rows, load_applied, save_applied, save_learned

if TYPE_CHECKING:
    from stockade.runtime.profile import Profiles

router = APIRouter()

DOC = "profiles"  # the name errors give the document: "profiles:7: spec.profiles[0]..."


class LearnedBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    agent: str = Field(min_length=1, max_length=253)
    yaml: str = Field(max_length=1024 * 1024)


def parse_texts(texts: list[tuple[str, str]]) -> "Profiles":
    """``stockade.runtime.profile.parse_texts``: the profiles' models load with the first request
    that reads profiles, not with the controller."""
    from stockade.runtime.profile import parse_texts

    return parse_texts(texts)


def canonical(text: str, name: str = DOC) -> tuple["Profiles", str]:
    """The profiles and the canonical text to store, masked (validated as it will be stored)."""
    from stockade.runtime.profile import dump

    profiles = parse_texts([(name, text)])
    stored = redact_text(dump(profiles))
    return parse_texts([(name, stored)]), stored


def summary(profiles: "Profiles", text: str, version: int) -> dict[str, Any]:
    return {
        "version": version,
        "profiles": {
            p.name: {"mode": p.mode, "zeroDrift": p.zero_drift, "processes": len(p.processes)}
            for p in profiles.spec.profiles
        },
        "digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
    }


def _wants_yaml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "yaml" in accept and "json" not in accept


@router.get("/api/v1/runtime-profiles", response_model=None)
def get_profiles(request: Request, store: StoreDep, _: Reader) -> Any:
    """The applied profiles: ``{"version", "profiles", "digest", "yaml"}``, or the YAML itself for
    ``Accept: application/yaml``; 404 before any apply."""
    found = load_applied(store)
    if found is None:
        raise HTTPException(404, "no process profiles applied yet")
    text, version = found
    if _wants_yaml(request):
        return PlainTextResponse(text, media_type="application/yaml")
    return redact(
        {**summary(parse_texts([("stored profiles", text)]), text, version), "yaml": text}
    )


@router.put("/api/v1/runtime-profiles")
async def put_profiles(
    request: Request, store: StoreDep, who: Operator, publish: Publish
) -> dict[str, Any]:
    """Apply a ProcessProfiles document (YAML or JSON): validated whole, then in force for every
    ``runtime watch`` following the controller. Answers the new set's summary."""
    profiles, text = await run_in_threadpool(canonical, await document(request))

    def apply() -> tuple[dict[str, Any] | None, dict[str, Any]]:
        found = load_applied(store)
        before = None
        if found is not None:
            before = summary(parse_texts([("stored profiles", found[0])]), *found)
        return before, summary(profiles, text, save_applied(store, text))

    before, after = await run_in_threadpool(apply)
    await run_in_threadpool(
        auth.audit,
        store,
        who,
        "runtime_profiles_applied",
        before=before,
        after=after,
        message=f"{who.who} applied process profiles version {after['version']}",
        sink=publish,
    )
    out: dict[str, Any] = redact(after)
    return out


@router.post("/api/v1/runtime-profiles/diff")
async def diff_profiles(request: Request, store: StoreDep, _: Reader) -> dict[str, Any]:
    """What applying the document would change: a unified diff of the canonical YAML."""
    from stockade.runtime.profile import text_diff

    new = (await run_in_threadpool(canonical, await document(request)))[1]
    found = await run_in_threadpool(load_applied, store)
    lines = text_diff(found[0] if found else "", new, new_name="document")
    out: dict[str, Any] = redact(
        {"version": found[1] if found else 0, "changed": bool(lines), "diff": "\n".join(lines)}
    )
    return out


@router.post("/api/v1/runtime-profiles/learned")
def post_learned(body: LearnedBody, store: StoreDep, _: Agent) -> dict[str, Any]:
    """An agent's learned profiles (what its Discover runs left): the newest per agent is kept."""
    profiles, text = canonical(body.yaml, name="learned profiles")
    agent = redact_text(body.agent)
    save_learned(store, agent, text)
    return {"agent": agent, "profiles": len(profiles.spec.profiles)}


@router.get("/api/v1/runtime-profiles/learned", response_model=None)
def get_learned(request: Request, store: StoreDep, _: Reader) -> Any:
    """What the agents learned: ``{"agents": [{"agent", "received_at", "profiles"}], "yaml"}``,
    the YAML being every agent's profiles merged (a profile learned on several nodes holds the
    processes of each); the YAML itself for ``Accept: application/yaml``."""
    from stockade.runtime.profile import dump, merge

    rows = learned_rows(store)
    sets = [parse_texts([(f"learned by {r[0]}", r[1])]) for r in rows]
    text = dump(merge(sets))
    if _wants_yaml(request):
        return PlainTextResponse(text, media_type="application/yaml")
    agents = [
        {
            "agent": r[0],
            "received_at": r[2].isoformat(),
            "profiles": {p.name: len(p.processes) for p in s.spec.profiles},
        }
        for r, s in zip(rows, sets, strict=True)
    ]
    return redact({"agents": agents, "yaml": text})
