"""``HOST[:PORT]/REPO[:TAG|@DIGEST]``: images in a registry, over the OCI distribution API.

Auth: anonymous first; on ``401`` the ``WWW-Authenticate`` challenge decides: ``Basic`` retries with
basic credentials, ``Bearer`` fetches a token from the challenge's realm for the challenged scope
(:mod:`.registry_tokens`) and retries with it. Credentials are looked up only when a registry asks
for them (:mod:`.registry_auth`: options, ECR and ACR tokens, docker config and its credential
helpers). ``docker.io`` names are pulled from Docker Hub's registry endpoint
(``$STOCKADE_DOCKER_HUB_REGISTRY``, default ``registry-1.docker.io``).
HTTPS by default; ``insecure`` allows plain HTTP, and only to a loopback registry.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx

from stockade.model.errors import RegistryError, UsageError
from stockade.scanning.interface import LayerInfo, Readable
from stockade.scanning.redirects import refuse_https_downgrade
from stockade.scanning.sources import manifest as mf
from stockade.scanning.sources.interface import Reference, ResolvedImage
from stockade.scanning.sources.oci_layout import resolved_from_manifest
from stockade.scanning.sources.registry_auth import (
    HUB_HOSTS,
    AuthOptions,
    Credential,
    resolve_credential,
)
from stockade.scanning.sources.registry_tokens import fetch_token

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_MAX_PAGES = 1000
_MAX_MANIFEST = 4 * 1024 * 1024
_MAX_BODY = 16 * 1024 * 1024  # configs, catalog pages, token answers
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback  # a bare address, IPv6 included
    except ValueError:
        pass
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def hub_registry_endpoint() -> str:
    """Where Docker Hub's images are pulled from (overridable for tests and mirrors)."""
    return os.environ.get("STOCKADE_DOCKER_HUB_REGISTRY") or "registry-1.docker.io"


class RegistryClient:
    """A small distribution-API client for one registry host."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        auth: AuthOptions | None = None,
    ) -> None:
        self.host = host  # as the user named it: the key of its credentials
        self.endpoint = hub_registry_endpoint() if host in HUB_HOSTS else host
        if insecure and not is_loopback(self.endpoint):
            raise UsageError(
                f"--insecure (plain HTTP) is allowed only for a loopback registry, not {host}"
            )
        self.base = f"{'http' if insecure else 'https'}://{self.endpoint}"
        if username is not None:
            auth = AuthOptions(
                username=username, password=password, config=auth.config if auth else None
            )
        self.auth_options = auth or AuthOptions()
        self._credential: Credential | None = None
        self._resolved = False
        self.http = httpx.Client(
            timeout=_TIMEOUT,
            follow_redirects=True,
            event_hooks={
                "response": [refuse_https_downgrade(lambda m: RegistryError(m, subject=host))]
            },
        )
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._refresh: dict[str, str] = {}  # realm -> ACR refresh token from the exchange

    @property
    def credential(self) -> Credential | None:
        """Looked up on the first challenge: an anonymous registry never runs a helper."""
        if not self._resolved:
            self._credential = resolve_credential(self.host, self.auth_options)
            self._resolved = True
        return self._credential

    def close(self) -> None:
        self.http.close()

    # -- requests with the auth dance ---------------------------------------------------------
    def _send(self, url: str, scope: str, headers: dict[str, str], stream: bool) -> httpx.Response:
        for attempt in range(2):
            hdrs = dict(headers)
            if scope in self._auth:
                hdrs["Authorization"] = self._auth[scope]
            try:
                request = self.http.build_request("GET", url, headers=hdrs)
                response = self.http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise RegistryError(
                        "the registry's TLS certificate is not trusted (add its CA with "
                        "SSL_CERT_FILE=ca.pem, or use --insecure for a loopback registry)",
                        subject=self.host,
                    ) from exc
                raise RegistryError(f"cannot reach the registry: {exc}", subject=self.host) from exc
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            self._authorize(challenge, scope)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authorize(self, challenge: str, scope: str) -> None:
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            cred = self.credential
            if cred is None:
                raise RegistryError(
                    "401 unauthorized: the registry needs credentials (--username/--password, "
                    "--auth-token, or docker login / a credential helper)",
                    subject=self.host,
                )
            if cred.kind != "basic":
                raise RegistryError(
                    f"the registry asks for basic auth but the credential ({cred.source}) is a "
                    "token",
                    subject=self.host,
                )
            raw = f"{cred.username}:{cred.secret}".encode()
            self._auth[scope] = "Basic " + base64.b64encode(raw).decode()
            return
        if kind == "bearer":
            params = dict(_CHALLENGE_RE.findall(challenge))
            token = fetch_token(
                self.http,
                params.get("realm", ""),
                params,
                scope,
                self.credential,
                self.endpoint,
                self._refresh,
            )
            self._auth[scope] = "Bearer " + token
            return
        raise RegistryError(
            f"401 unauthorized with an unsupported challenge {challenge[:60]!r}", subject=self.host
        )

    def get(
        self,
        path: str,
        scope: str,
        what: str,
        headers: dict[str, str] | None = None,
        limit: int = _MAX_BODY,
    ) -> _Body:
        """GET ``/v2/...``, body bounded by ``limit``; 401/403/404 become RegistryError."""
        response = self._send(self.base + path, scope, headers or {}, stream=True)
        try:
            _check_status(response, what, self.host)
            return _Body(headers=response.headers, content=_read_capped(response, limit, what))
        finally:
            response.close()

    def get_if_present(
        self,
        path: str,
        scope: str,
        what: str,
        headers: dict[str, str] | None = None,
        limit: int = _MAX_BODY,
    ) -> _Body | None:
        """Like :meth:`get`, but None when the registry answers 404 (a tag that may not exist)."""
        response = self._send(self.base + path, scope, headers or {}, stream=True)
        try:
            if response.status_code == 404:
                return None
            _check_status(response, what, self.host)
            return _Body(headers=response.headers, content=_read_capped(response, limit, what))
        finally:
            response.close()

    @contextmanager
    def stream(self, path: str, scope: str, what: str) -> Iterator[httpx.Response]:
        # Blobs are hashed as stored: ask for them without transfer encoding.
        response = self._send(self.base + path, scope, {"Accept-Encoding": "identity"}, stream=True)
        try:
            _check_status(response, what, self.host)
            yield response
        finally:
            response.close()

    # -- catalog ---------------------------------------------------------------------------------
    def _paged(
        self, path: str, key: str, scope: str, what: str, page_size: int | None = None
    ) -> list[str]:
        """Follow ``Link: <...>; rel="next"``. With ``page_size`` (the catalog), a page of exactly
        that many names and no ``Link`` asks for the next with the spec's ``last=`` (registries
        that page by ``n``/``last`` only). A page asked twice is a loop, not more data."""
        items: list[str] = []
        url, asked = path, {path}
        for _ in range(_MAX_PAGES):
            response = self.get(url, scope, what)
            try:
                doc = response.json()
            except (ValueError, RecursionError) as exc:
                raise RegistryError(f"{what}: not a JSON answer", subject=self.host) from exc
            page = (doc.get(key) if isinstance(doc, dict) else None) or []
            if not isinstance(page, list):
                raise RegistryError(f"{what}: {key!r} is not a list", subject=self.host)
            names = [str(x) for x in page]
            items.extend(names)
            following = _next_link(response.headers.get("link", ""))
            if following is None and page_size and len(names) == page_size:
                following = f"{path}&last={quote(names[-1], safe='')}"
            if following is None:
                return items
            if following in asked:
                raise RegistryError(f"{what}: the registry pages in a loop", subject=self.host)
            asked.add(following)
            url = following
        raise RegistryError(f"{what}: more than {_MAX_PAGES} pages", subject=self.host)

    def list_repositories(self, page_size: int = 100) -> list[str]:
        """Every repository, from ``/v2/_catalog`` (``n``/``last`` pages, ``Link`` headers)."""
        return self._paged(
            f"/v2/_catalog?n={page_size}",
            "repositories",
            "registry:catalog:*",
            "catalog",
            page_size,
        )

    def list_tags(self, repository: str, page_size: int = 100) -> list[str]:
        return self._paged(
            f"/v2/{repository}/tags/list?n={page_size}",
            "tags",
            f"repository:{repository}:pull",
            repository,
        )


@dataclass(frozen=True, slots=True)
class _Body:
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    parts, size = [], 0
    try:
        for chunk in response.iter_bytes(1 << 16):  # decoded: JSON may come gzip-encoded
            size += len(chunk)
            if size > limit:
                raise RegistryError(f"{what}: the answer is larger than {limit} bytes")
            parts.append(chunk)
    except httpx.HTTPError as exc:
        raise RegistryError(f"{what}: download failed: {exc}") from exc
    return b"".join(parts)


def _next_link(header: str) -> str | None:
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', header)
    if not match:
        return None
    target = match.group(1)
    if target.startswith("http://") or target.startswith("https://"):
        url = httpx.URL(target)
        target = url.raw_path.decode()
    return target if target.startswith("/v2/") else None


def _check_status(response: httpx.Response, what: str, host: str) -> None:
    code = response.status_code
    if code == 200:
        return
    if code == 401:
        raise RegistryError(
            f"401 unauthorized for {what}: credentials missing or rejected", subject=host
        )
    if code == 403:
        raise RegistryError(f"403 forbidden: no access to {what}", subject=host)
    if code == 404:
        raise RegistryError(f"404 not found: {what}", subject=host)
    raise RegistryError(f"HTTP {code} for {what}", subject=host)


class _ResponseReader:
    """A read(n) stream over an httpx streaming response (raw bytes, no content decoding).

    Keeps the current network chunk and an offset, so many small reads copy only what they take.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw(1 << 20)
        self._chunk = b""
        self._pos = 0

    def _next_chunk(self) -> bool:
        try:
            self._chunk, self._pos = next(self._chunks), 0
        except StopIteration:
            return False
        except httpx.HTTPError as exc:
            raise RegistryError(f"blob download failed: {exc}") from exc
        return True

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n < 0 or n > 0:
            if self._pos >= len(self._chunk) and not self._next_chunk():
                break
            end = len(self._chunk) if n < 0 else self._pos + n
            part = self._chunk[self._pos : end]
            self._pos += len(part)
            if n > 0:
                n -= len(part)
            parts.append(part)
        return b"".join(parts)


class RegistrySource:
    """One image in a registry."""

    def __init__(
        self,
        ref: Reference,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        auth: AuthOptions | None = None,
    ) -> None:
        self.ref = ref
        self.reference = ref.text
        self.scope = f"repository:{ref.repository}:pull"
        self.client = RegistryClient(
            ref.host, insecure=insecure, username=username, password=password, auth=auth
        )

    def _manifest(self, reference: str) -> tuple[bytes, str]:
        what = (
            f"manifest {self.ref.repository}:{reference}"
            if ":" not in reference
            else f"manifest {reference}"
        )
        response = self.client.get(
            f"/v2/{self.ref.repository}/manifests/{reference}",
            self.scope,
            what,
            {"Accept": mf.ACCEPT},
            limit=_MAX_MANIFEST,
        )
        data = response.content
        if reference.startswith("sha256:"):
            mf.check_digest(data, reference, f"{self.reference} {what}")
        else:
            header = response.headers.get("docker-content-digest")
            if header and header.startswith("sha256:"):
                mf.check_digest(data, header, f"{self.reference} {what}")
        return data, response.headers.get("content-type", "").split(";")[0].strip()

    def _blob(self, digest: str) -> bytes:
        response = self.client.get(
            f"/v2/{self.ref.repository}/blobs/{digest}", self.scope, f"blob {digest}"
        )
        mf.check_digest(response.content, digest, f"{self.reference} blob {digest}")
        return response.content

    def resolve(self, platform: str | None = None) -> ResolvedImage:
        top, top_type = self._manifest(self.ref.digest or str(self.ref.tag))

        def fetch(desc: dict[str, Any]) -> bytes:
            digest = mf.check_digest_format(desc.get("digest"), self.reference)
            return self._manifest(digest)[0]

        manifest, digest = mf.resolve_manifest(top, top_type, fetch, platform, self.reference)
        resolved = resolved_from_manifest(
            manifest,
            digest,
            self._blob,
            self.reference,
            name=f"{self.ref.host}/{self.ref.repository}",
            tag=self.ref.tag,
        )
        return replace(resolved, reference_digest=self.ref.digest or mf.sha256_digest(top))

    def open_blob(self, layer: LayerInfo) -> AbstractContextManager[Readable]:
        return self._open_blob(layer)

    @contextmanager
    def _open_blob(self, layer: LayerInfo) -> Iterator[Readable]:
        path = f"/v2/{self.ref.repository}/blobs/{layer.digest}"
        with self.client.stream(path, self.scope, f"blob {layer.digest}") as response:
            yield _ResponseReader(response)

    def close(self) -> None:
        self.client.close()
