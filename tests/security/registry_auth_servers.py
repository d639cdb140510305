"""Test-only servers for the registry credential flows, on loopback.

``AuthServer`` is one HTTP server playing three real services, each from its documented shapes:

- the distribution token server (``/oauth2/token``): ``GET`` with basic auth (Docker Hub, Harbor,
  Artifactory) and the OAuth2 ``POST grant_type=refresh_token`` (identity tokens, ACR);
- Azure ACR's ``POST /oauth2/exchange`` (``grant_type=access_token&service=&access_token=`` ->
  ``{"refresh_token": ...}``);
- the Docker Hub API: ``POST /v2/auth/token`` (``{identifier, secret}`` -> ``{access_token}``) and
  ``GET /v2/repositories/<namespace>/`` (``{count, next, previous, results: [{namespace, name,
  repository_type, ...}]}``), one repository per page whatever ``page_size`` asks (so ``next`` is followed).

Tokens are JWTs signed by :class:`tests.scanning.registry_servers.TokenIssuer`, which the
docker-registry under test trusts. Every request is recorded (method, path, headers, body) so tests
can check where each secret went. ``mode`` turns the token endpoint hostile.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.scanning.registry_servers import TokenIssuer


@dataclass
class Seen:
    method: str
    path: str
    authorization: str
    body: str


@dataclass
class AuthServer:
    issuer: TokenIssuer
    users: dict[str, str] = field(default_factory=dict)  # basic user -> password
    refresh_tokens: set[str] = field(default_factory=set)  # valid OAuth2 refresh tokens
    aad_tokens: set[str] = field(default_factory=set)  # Azure AD tokens ACR accepts
    hub: dict[str, list[str]] = field(default_factory=dict)  # namespace -> repository names
    hub_private: set[str] = field(default_factory=set)  # namespaces needing the Hub login
    mode: str = "ok"  # "ok", "401", "garbage", "redirect:<url>"
    hub_next: str | None = None  # a hostile "next" link for the Hub listing
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self
        self._hub_tokens: set[str] = set()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                owner._handle(self, "GET", b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner._handle(self, "POST", self.rfile.read(min(length, 1 << 20)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.origin}/oauth2/token"

    def __enter__(self) -> AuthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # -- dispatch -----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        url = urlparse(h.path)
        self.seen.append(
            Seen(method, h.path, h.headers.get("Authorization", ""), body.decode(errors="replace"))
        )
        if url.path == "/oauth2/token":
            self._token(h, method, parse_qs(url.query), parse_qs(body.decode()))
        elif url.path == "/oauth2/exchange" and method == "POST":
            self._exchange(h, parse_qs(body.decode()))
        elif url.path == "/v2/auth/token" and method == "POST":
            self._hub_login(h, body)
        elif url.path.startswith("/v2/repositories/") and method == "GET":
            self._hub_list(h, url.path.split("/")[3], parse_qs(url.query))
        else:
            self._send(h, 404, {"detail": "not found"})

    def _token(self, h, method: str, query: dict, form: dict) -> None:
        if self.mode == "401":
            return self._send(h, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
        if self.mode == "garbage":
            return self._send_raw(h, 200, b"\x00not json{{{")
        if self.mode.startswith("redirect:"):
            h.send_response(307)
            h.send_header("Location", self.mode.split(":", 1)[1])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        subject = ""
        if method == "GET":
            auth = h.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                if self.users.get(user) != pw:
                    return self._send(h, 401, {"details": "incorrect username or password"})
                subject = user
            scopes = query.get("scope", [])
        else:
            if form.get("grant_type") != ["refresh_token"]:
                return self._send(h, 400, {"error": "unsupported_grant_type"})
            if form.get("refresh_token", [""])[0] not in self.refresh_tokens:
                return self._send(h, 401, {"error": "invalid_grant"})
            subject = "refresh-user"
            scopes = form.get("scope", [])
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if subject:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
        token = self.issuer.token(subject, access)
        key = "token" if method == "GET" else "access_token"
        return self._send(h, 200, {key: token, "expires_in": 300})

    def _exchange(self, h, form: dict) -> None:
        if form.get("grant_type") != ["access_token"]:
            return self._send(h, 400, {"error": "unsupported_grant_type"})
        if form.get("access_token", [""])[0] not in self.aad_tokens:
            return self._send(h, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
        refresh = f"acr-refresh-{len(self.refresh_tokens)}"
        self.refresh_tokens.add(refresh)
        return self._send(h, 200, {"refresh_token": refresh})

    def _hub_login(self, h, body: bytes) -> None:
        try:
            doc = json.loads(body)
        except ValueError:
            return self._send(h, 400, {"detail": "bad request"})
        if self.users.get(doc.get("identifier")) != doc.get("secret"):
            return self._send(h, 401, {"detail": "Incorrect authentication credentials"})
        token = f"hub-{len(self._hub_tokens)}"
        self._hub_tokens.add(token)
        return self._send(h, 200, {"access_token": token})

    def _hub_list(self, h, namespace: str, query: dict) -> None:
        if namespace not in self.hub:
            return self._send(h, 404, {"message": "object not found", "errinfo": {}})
        bearer = h.headers.get("Authorization", "").removeprefix("Bearer ")
        if namespace in self.hub_private and bearer not in self._hub_tokens:
            return self._send(h, 404, {"message": "object not found", "errinfo": {}})
        names = sorted(self.hub[namespace])
        page = int(query.get("page", ["1"])[0])
        chunk = names[page - 1 : page]
        more = page < len(names)
        base = f"{self.origin}/v2/repositories/{namespace}/?page_size=1"
        return self._send(
            h,
            200,
            {
                "count": len(names),
                "next": self.hub_next or (f"{base}&page={page + 1}" if more else None),
                "previous": f"{base}&page={page - 1}" if page > 1 else None,
                "results": [
                    {
                        "name": n,
                        "namespace": namespace,
                        "repository_type": "image",
                        "status": 1,
                        "is_private": namespace in self.hub_private,
                        "star_count": 0,
                        "pull_count": 0,
                        "last_updated": "2024-05-01T10:00:00.000000Z",
                    }
                    for n in chunk
                ],
            },
        )

    @staticmethod
    def _send(h, status: int, doc: dict) -> None:
        AuthServer._send_raw(h, status, json.dumps(doc).encode())

    @staticmethod
    def _send_raw(h, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class CatalogServer:
    """A registry catalog paging only by the spec's ``n`` and ``last`` (no ``Link`` header), as
    some Artifactory and Harbor versions answer; ``honour_last=False`` repeats the first page."""

    def __init__(self, repositories: list[str], *, honour_last: bool = True) -> None:
        owner = self
        self.repositories = sorted(repositories)
        self.honour_last = honour_last
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                url = urlparse(self.path)
                owner.paths.append(self.path)
                query = parse_qs(url.query)
                n = int(query.get("n", ["100"])[0])
                last = query.get("last", [""])[0] if owner.honour_last else ""
                after = [r for r in owner.repositories if r > last]
                AuthServer._send(self, 200, {"repositories": after[:n]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CatalogServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
