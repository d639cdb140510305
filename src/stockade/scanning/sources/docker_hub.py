"""Docker Hub has no ``/v2/_catalog``: a namespace's repositories come from the Hub API.

``GET {api}/v2/repositories/<namespace>/?page_size=100`` answers ``{count, next, previous,
results: [{namespace, name, repository_type, ...}]}``; ``next`` is followed only while it stays on
the API's own origin. With basic credentials for Docker Hub (a personal access token or password),
``POST {api}/v2/auth/token`` with ``{identifier, secret}`` gives a short-lived ``access_token`` sent
as ``Authorization: Bearer`` so private repositories are listed too; over HTTPS only (or a loopback
API in tests). The API is ``$STOCKADE_DOCKER_HUB_API`` (default ``https://hub.docker.com``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from stockade.model.errors import RegistryError, UsageError

if TYPE_CHECKING:
    from stockade.scanning.sources.registry import RegistryClient

_MAX_PAGES = 1000
_MAX_PAGE_BYTES = 8 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


def hub_api_base() -> str:
    return (os.environ.get("STOCKADE_DOCKER_HUB_API") or "https://hub.docker.com").rstrip("/")


def hub_repositories(client: RegistryClient, namespaces: Sequence[str]) -> list[str]:
    """``namespace/name`` of every repository of each namespace."""
    from stockade.scanning.sources.registry import is_loopback

    if not namespaces:
        raise UsageError(
            "Docker Hub has no catalog: name the namespaces to walk with --namespace NAME"
        )
    base = httpx.URL(hub_api_base())
    if base.scheme != "https" and not (base.scheme == "http" and is_loopback(base.host)):
        raise UsageError(f"the Docker Hub API must be HTTPS (or a loopback test server): {base}")
    headers = {"Accept": "application/json"}
    token = _login(client, base)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    repos: list[str] = []
    for namespace in namespaces:
        if not _NAME.match(namespace):
            raise UsageError(f"not a Docker Hub namespace: {namespace[:60]!r}")
        repos += _namespace(client.http, base, namespace, headers)
    return repos


def _login(client: RegistryClient, base: httpx.URL) -> str | None:
    cred = client.credential
    if cred is None or cred.kind != "basic":
        return None
    doc = _call(
        client.http,
        "POST",
        base.join("/v2/auth/token"),
        {"Accept": "application/json"},
        {"identifier": cred.username, "secret": cred.secret},
    )
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token.isascii() or not token.isprintable():
        raise RegistryError("the Docker Hub API answered the login with no access token")
    return token


def _namespace(
    http: httpx.Client, base: httpx.URL, namespace: str, headers: dict[str, str]
) -> list[str]:
    url: httpx.URL | None = base.join(f"/v2/repositories/{namespace}/").copy_merge_params(
        {"page_size": "100"}
    )
    names: list[str] = []
    for _ in range(_MAX_PAGES):
        if url is None:
            return names
        doc = _call(http, "GET", url, headers, None)
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise RegistryError(f"Docker Hub API: no repository list for {namespace}")
        results = doc["results"]
        for item in results:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and _NAME.match(name):
                names.append(f"{namespace}/{name}")
        url = _next(doc.get("next"), base)
    raise RegistryError(f"Docker Hub API: more than {_MAX_PAGES} pages for {namespace}")


def _next(value: object, base: httpx.URL) -> httpx.URL | None:
    if not value:
        return None
    try:
        url = base.join(str(value))
    except httpx.InvalidURL as exc:
        raise RegistryError("Docker Hub API: an invalid next-page URL") from exc
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise RegistryError(
            f"Docker Hub API: refusing a next page on another origin ({url.scheme}://{url.host})"
        )
    return url


def _call(
    http: httpx.Client,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: dict[str, str] | None,
) -> object:
    try:
        with http.stream(
            method, url, headers=headers, json=body, follow_redirects=False
        ) as response:
            status = response.status_code
            parts: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes(1 << 16) if status == 200 else ():
                size += len(chunk)
                if size > _MAX_PAGE_BYTES:
                    raise RegistryError("Docker Hub API: an answer larger than 8 MiB")
                parts.append(chunk)
    except httpx.HTTPError as exc:
        raise RegistryError(f"cannot reach the Docker Hub API: {type(exc).__name__}") from exc
    if status in (401, 403):
        raise RegistryError(f"Docker Hub API: {status}, credentials missing or rejected")
    if status == 404:
        raise RegistryError(f"Docker Hub API: 404 not found: {url.path}")
    if status != 200:
        raise RegistryError(f"Docker Hub API answered HTTP {status}")
    try:
        return json.loads(b"".join(parts))
    except (ValueError, RecursionError) as exc:
        raise RegistryError("Docker Hub API: not a JSON answer") from exc
