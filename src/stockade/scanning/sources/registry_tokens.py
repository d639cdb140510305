"""The bearer-token dance of the distribution token spec, with each kind of credential.

On ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``:

- no credential: ``GET realm?service=&scope=`` anonymously;
- ``basic``: the same GET with HTTP basic auth (Docker Hub, Harbor, Artifactory, GitLab, ACR with a
  token user or admin user);
- ``refresh_token`` (an identity token from ``docker login`` or a helper's ``<token>`` user): OAuth2
  ``POST realm`` with ``grant_type=refresh_token&service=&scope=&refresh_token=&client_id=``;
- ``aad_token`` (Azure ACR): ``POST <realm origin>/oauth2/exchange`` with
  ``grant_type=access_token&service=&access_token=`` gives an ACR refresh token, then the
  refresh-token POST above.

Where credentials may go: over HTTPS to any realm (Docker Hub's realm is ``auth.docker.io``, not the
registry's host), over plain HTTP only to a loopback token server of a loopback registry (labs,
tests). Anything else is refused before a byte is sent. Token requests follow no redirect: a
``307`` would replay a refresh token to wherever it points.
"""

from __future__ import annotations

import json

import httpx

from stockade.model.errors import RegistryError
from stockade.scanning.sources.registry_auth import Credential

_MAX_TOKEN_ANSWER = 1024 * 1024
CLIENT_ID = "stockade"


def credentials_may_go_to(realm: str, registry_host: str) -> bool:
    """Whether a credential may be sent to the token server ``realm`` of ``registry_host``."""
    from stockade.scanning.sources.registry import is_loopback

    url = httpx.URL(realm)
    if url.scheme == "https":
        return True
    return url.scheme == "http" and is_loopback(url.host) and is_loopback(registry_host)


def fetch_token(
    http: httpx.Client,
    realm: str,
    params: dict[str, str],
    scope: str,
    credential: Credential | None,
    registry_host: str,
    refresh_cache: dict[str, str],
) -> str:
    """A bearer token for ``scope`` from the challenge's realm."""
    if not realm.startswith(("https://", "http://")):
        raise RegistryError(
            f"bearer challenge without a usable realm: {realm[:80]!r}", subject=registry_host
        )
    if credential is not None and not credentials_may_go_to(realm, registry_host):
        raise RegistryError(
            f"refusing to send credentials to the token server {_shown(realm)}: credentials go "
            "only over HTTPS, or plain HTTP to a loopback token server of a loopback registry",
            subject=registry_host,
        )
    service = params.get("service", "")
    wanted = params.get("scope") or scope
    if credential is None or credential.kind == "basic":
        query = {"service": service} if service else {}
        if wanted:
            query["scope"] = wanted
        auth = httpx.BasicAuth(credential.username, credential.secret) if credential else None
        doc = _call(http, "GET", realm, registry_host, params=query, auth=auth)
        return _token_of(doc, ("token", "access_token"), registry_host)
    refresh = credential.secret
    if credential.kind == "aad_token":
        refresh = refresh_cache.get(realm) or _acr_exchange(
            http, realm, service, credential.secret, registry_host
        )
        refresh_cache[realm] = refresh
    form = {
        "grant_type": "refresh_token",
        "service": service,
        "client_id": CLIENT_ID,
        "refresh_token": refresh,
    }
    if wanted:
        form["scope"] = wanted
    doc = _call(http, "POST", realm, registry_host, data=form)
    return _token_of(doc, ("access_token", "token"), registry_host)


def _acr_exchange(
    http: httpx.Client, realm: str, service: str, aad_token: str, registry_host: str
) -> str:
    """ACR: an Azure AD access token for an ACR refresh token (``POST /oauth2/exchange``)."""
    url = httpx.URL(realm).copy_with(path="/oauth2/exchange", query=None)
    form = {"grant_type": "access_token", "service": service, "access_token": aad_token}
    doc = _call(http, "POST", str(url), registry_host, data=form, what="token exchange")
    return _token_of(doc, ("refresh_token",), registry_host, what="token exchange")


def _call(
    http: httpx.Client,
    method: str,
    url: str,
    registry_host: str,
    *,
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    auth: httpx.BasicAuth | None = None,
    what: str = "token server",
) -> object:
    try:
        with http.stream(
            method, url, params=params, data=data, auth=auth, follow_redirects=False
        ) as response:
            status = response.status_code
            body = _read(response, what, registry_host) if status == 200 else b""
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"cannot reach the {what} {_shown(url)}: {type(exc).__name__}", subject=registry_host
        ) from exc
    if status in (400, 401, 403):
        raise RegistryError(
            f"{status} from the {what}: credentials rejected", subject=registry_host
        )
    if status != 200:
        raise RegistryError(f"{what} answered HTTP {status}", subject=registry_host)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"{what} answered with no JSON token", subject=registry_host) from exc


def _read(response: httpx.Response, what: str, registry_host: str) -> bytes:
    parts, size = [], 0
    for chunk in response.iter_bytes(1 << 16):
        size += len(chunk)
        if size > _MAX_TOKEN_ANSWER:
            raise RegistryError(
                f"{what} answer is larger than {_MAX_TOKEN_ANSWER} bytes", subject=registry_host
            )
        parts.append(chunk)
    return b"".join(parts)


def _token_of(
    doc: object, keys: tuple[str, ...], registry_host: str, what: str = "token server"
) -> str:
    if isinstance(doc, dict):
        for key in keys:
            token = doc.get(key)
            if isinstance(token, str) and token and token.isascii() and token.isprintable():
                return token
    raise RegistryError(f"{what} answered with no token", subject=registry_host)


def _shown(url: str) -> str:
    """A URL without its query (a realm's query may carry anything) for messages."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"[:120]
