"""Who may call what: the request's principal (API token or session cookie) and role checks, as
FastAPI dependencies every router of the API shares.

The application keeps what routers need on ``app.state`` (set by :func:`stockade.api.app.create_app`):
``store``, ``service`` (the response rules, targets and quarantine), ``broadcaster`` (live streams),
``publish`` (hand an event the API stored to the response rules), ``settings`` and ``singletons``
(the leader lock and the singleton jobs, :mod:`stockade.api.leader`).
"""

# No "from __future__ import annotations": FastAPI reads the dependency aliases at run time.

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from stockade.api import auth
from stockade.api.auth import Principal
from stockade.model import Event
from stockade.store import Store

SESSION_COOKIE = "stockade_session"


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def publisher(request: Request) -> Callable[[Event], None]:
    publish: Callable[[Event], None] = request.app.state.publish
    return publish


async def document(request: Request) -> str:
    """The request's body as text (a YAML or JSON document); 400 when it is not UTF-8."""
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the document is not UTF-8") from None


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer`` or the session cookie; else 401."""
    store = store_of(request)
    header = request.headers.get("authorization", "")
    found: Principal | None = None
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer":
            found = auth.principal_for_token(store, secret.strip())
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            found = auth.principal_for_session(store, cookie)
    if found is None:
        raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": "Bearer"})
    return found


def role(needed: str) -> Callable[..., Principal]:
    """A dependency: the caller, if its role may do what ``needed`` may; else 403."""

    def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may(needed):
            raise HTTPException(403, f"role {who.role} may not do this (needs {needed})")
        return who

    return check


def scan_reporter(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not (who.may("operator") or who.may("agent")):
        raise HTTPException(403, f"role {who.role} may not do this (needs operator or agent)")
    return who


Anyone = Annotated[Principal, Depends(principal)]
Reader = Annotated[Principal, Depends(role("reader"))]
Operator = Annotated[Principal, Depends(role("operator"))]
Admin = Annotated[Principal, Depends(role("admin"))]
Agent = Annotated[Principal, Depends(role("agent"))]
ScanReporter = Annotated[Principal, Depends(scan_reporter)]
StoreDep = Annotated[Store, Depends(store_of)]
Publish = Annotated[Callable[[Event], None], Depends(publisher)]

__all__ = [
    "SESSION_COOKIE",
    "Admin",
    "Agent",
    "Anyone",
    "Operator",
    "Publish",
    "Reader",
    "ScanReporter",
    "StoreDep",
    "document",
    "principal",
    "role",
]
