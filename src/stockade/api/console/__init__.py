"""The web console: pages served by the controller behind its login.

Why static pages with small scripts rather than server-rendered templates or a framework app: every
page is a fixed HTML shell plus one ES module that reads the same ``/api/v1`` JSON the CLI and other
clients use, so the console can show nothing the API does not (one access check, one masking gate,
one audit trail), it needs no build step (the only third-party code is Cytoscape.js and its fcose
layout, copied from npm by ``console/vendor.py`` and shipped in the package), and the Content
Security Policy can forbid every inline script and style. Data is put into the page with
``textContent`` and DOM calls only, never as HTML.

Routes: ``/`` and ``/ui/`` go to the overview; ``/ui/login``; ``/ui/<page>`` for the pages in
``PAGES`` (a visitor without a valid session is sent to the login page); ``/ui/static/...`` for the
scripts, the style sheet and the vendored libraries.
"""

# No "from __future__ import annotations": FastAPI reads the annotations at run time.

from importlib.resources import files
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stockade.api import auth
from stockade.api.access import SESSION_COOKIE, store_of
from stockade.store import Store

# page -> title, in the navigation's order
PAGES = {
    "overview": "Overview",
    "map": "Network map",
    "vulnerabilities": "Vulnerabilities",
    "compliance": "Compliance",
    "events": "Events",
    "policy": "Policy",
    "responses": "Response rules",
    "admin": "Users and tokens",
}

# Scripts only from the console itself. Styles may also be inline: Cytoscape.js sets style
# attributes on the map's container and layers (no script can come in through a style).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}

_ROOT = files("stockade.api.console")
router = APIRouter(include_in_schema=False)


def _read(*parts: str) -> bytes:
    node = _ROOT
    for part in parts:
        node = node.joinpath(part)
    try:
        return node.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(404, "no such page") from None


# the third-party scripts, loaded by the pages that draw with them only
VENDOR_SCRIPTS = {
    "map": ("cytoscape.min.js", "layout-base.js", "cose-base.js", "cytoscape-fcose.js"),
}


def _shell(page: str) -> str:
    current = ' aria-current="page"'
    nav = "\n".join(
        f'      <a href="/ui/{name}"{current if name == page else ""}>{title}</a>'
        for name, title in PAGES.items()
    )
    return (
        _read("pages", "shell.html")
        .decode("utf-8")
        .replace("{{title}}", PAGES[page])
        .replace("{{page}}", page)
        .replace("{{nav}}", nav)
        .replace(
            "{{vendor}}",
            "".join(
                f'  <script src="/ui/static/vendor/{name}" defer></script>\n'
                for name in VENDOR_SCRIPTS.get(page, ())
            ),
        )
    )


def _signed_in(request: Request, store: Store) -> bool:
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and auth.principal_for_session(store, cookie) is not None


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/overview", status_code=303)


@router.get("/favicon.ico")
def favicon() -> RedirectResponse:
    return RedirectResponse("/ui/static/favicon.svg", status_code=301)


@router.get("/ui/login")
def login_page() -> HTMLResponse:
    return HTMLResponse(_read("pages", "login.html").decode("utf-8"), headers=HEADERS)


@router.get("/ui/static/{path:path}")
def static(path: str) -> Response:
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or len(parts) > 3:
        raise HTTPException(404, "no such file")
    suffix = "." + parts[-1].rsplit(".", 1)[-1] if "." in parts[-1] else ""
    if suffix not in STATIC_TYPES:
        raise HTTPException(404, "no such file")
    body = _read("static", *parts)
    headers = {**HEADERS, "Cache-Control": "private, max-age=300"}
    return Response(body, media_type=STATIC_TYPES[suffix], headers=headers)


@router.get("/ui/{page}")
def page(page: str, request: Request, store: Annotated[Store, Depends(store_of)]) -> Response:
    if page not in PAGES:
        raise HTTPException(404, "no such page")
    if not _signed_in(request, store):
        target = quote(f"/ui/{page}", safe="/")
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)
    return HTMLResponse(_shell(page), headers=HEADERS)
