"""Reading workloads from a live cluster through the Kubernetes REST API (httpx, no client library).

Credentials come from a kubeconfig (current context: server, CA, bearer token or token file, client
certificate and key, as files or inline data) or from the in-cluster service account. Every kind the
checks understand is listed across all namespaces, page by page.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stockade.compliance.workloads.engine import Manifest
from stockade.k8s.objects import (
    WORKLOAD_KINDS,
    containers_of,
    expand_list,
    metadata,
    namespace_of,
    pod_spec_of,
)
from stockade.model import ConfigError, InputError

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PAGE = 500

# (API path prefix, plural) of every collection read
COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("/api/v1", "namespaces"),
    ("/api/v1", "serviceaccounts"),
    ("/api/v1", "pods"),
    ("/api/v1", "replicationcontrollers"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "replicasets"),
    ("/apis/apps/v1", "statefulsets"),
    ("/apis/apps/v1", "daemonsets"),
    ("/apis/batch/v1", "jobs"),
    ("/apis/batch/v1", "cronjobs"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    ("/apis/networking.k8s.io/v1", "networkpolicies"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """How to reach one API server."""

    server: str
    ca_pem: bytes | None = None  # None: system trust store
    verify: bool = True
    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    name: str = "cluster"


def _read(path: str, base: Path) -> bytes:
    p = Path(path).expanduser()
    p = p if p.is_absolute() else base / p
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from exc


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            inner = entry.get(what)
            return inner if isinstance(inner, dict) else {}
    raise ConfigError(f"kubeconfig has no {what} named {name!r}")


def _blob(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode(section[f"{key}-data"], validate=True)
        except ValueError as exc:
            raise ConfigError(f"kubeconfig {key}-data is not base64") from exc
    if section.get(key):
        return _read(str(section[key]), base)
    return None


def from_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> Cluster:
    """The cluster and credentials of a kubeconfig's current (or named) context."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {file}: {exc.strerror}") from exc
    from stockade.config import parse_yaml

    cfg, _node = parse_yaml(text, name=f"kubeconfig {file}")
    if not isinstance(cfg, dict):
        raise ConfigError(f"kubeconfig {file} is not a mapping")
    name = context or cfg.get("current-context")
    if not name:
        raise ConfigError(f"kubeconfig {file} has no current-context")
    ctx = _named(cfg.get("contexts"), name, "context")
    cluster = _named(cfg.get("clusters"), str(ctx.get("cluster")), "cluster")
    user = _named(cfg.get("users"), str(ctx.get("user")), "user") if ctx.get("user") else {}
    base = file.parent
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _read(str(user["tokenFile"]), base).decode().strip()
    has_cert = user.get("client-certificate") or user.get("client-certificate-data")
    if (user.get("exec") or user.get("auth-provider")) and not (token or has_cert):
        raise ConfigError(
            "kubeconfig user uses an exec or auth-provider plugin, which is not supported"
        )
    return Cluster(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_blob(cluster, "certificate-authority", base),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        token=token,
        cert_pem=_blob(user, "client-certificate", base),
        key_pem=_blob(user, "client-key", base),
        name=str(name),
    )


def in_cluster(sa_dir: Path = SA_DIR, env: dict[str, str] | None = None) -> Cluster:
    """The API server and service-account token a pod sees."""
    env = dict(os.environ) if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("not running in a cluster (KUBERNETES_SERVICE_HOST is not set)")
    host = f"[{host}]" if ":" in host else host
    return Cluster(
        server=f"https://{host}:{port}",
        ca_pem=_read(str(sa_dir / "ca.crt"), sa_dir),
        token=_read(str(sa_dir / "token"), sa_dir).decode().strip(),
        name="in-cluster",
    )


@contextmanager
def _ssl_context(cluster: Cluster) -> Iterator[ssl.SSLContext | bool]:
    if not cluster.verify:
        yield False
        return
    ctx = ssl.create_default_context()
    if cluster.ca_pem:
        ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode("ascii", "replace"))
    if cluster.cert_pem and cluster.key_pem:
        # ssl loads client certificates only from files; keep them in a private temporary folder.
        with tempfile.TemporaryDirectory(prefix="stockade-kube-") as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(cluster.cert_pem)
            key.touch(mode=0o600)
            key.write_bytes(cluster.key_pem)
            ctx.load_cert_chain(cert, key)
        yield ctx
        return
    yield ctx


def fetch(cluster: Cluster, *, timeout: float = 30.0) -> list[Manifest]:
    """Every object of :data:`COLLECTIONS`, minus pods and ReplicaSets owned by a listed controller
    (their controller is checked instead, so each problem is reported once)."""
    headers = {"Accept": "application/json"}
    if cluster.token:
        headers["Authorization"] = f"Bearer {cluster.token}"
    objs: list[dict[str, Any]] = []
    try:
        with (
            _ssl_context(cluster) as verify,
            httpx.Client(
                base_url=cluster.server, headers=headers, verify=verify, timeout=timeout
            ) as client,
        ):
            for prefix, plural in COLLECTIONS:
                objs += _list(client, f"{prefix}/{plural}")
    except ssl.SSLError as exc:
        raise ConfigError(f"bad TLS material for {cluster.name}: {exc.reason}") from exc
    except httpx.HTTPError as exc:
        raise InputError(f"cannot reach the API server {cluster.server}: {exc}") from exc
    location = f"cluster:{cluster.name}"
    templates = {
        (str(o.get("kind")), namespace_of(o), str(metadata(o).get("name"))): spec
        for o in objs
        if o.get("kind") != "Pod" and (spec := pod_spec_of(o)) is not None
    }
    return [Manifest(obj=o, location=location) for o in objs if _reported(o, templates)]


def _list(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cont: str | None = None
    for _ in range(100_000):  # bounded: a server that never ends its pages cannot hang us
        params = {"limit": str(PAGE)} | ({"continue": cont} if cont else {})
        resp = client.get(path, params=params)
        if resp.status_code == 404:
            return out  # an API group this server does not serve
        if resp.status_code in (401, 403):
            raise InputError(f"the API server refused to list {path} (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise InputError(f"listing {path} failed: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise InputError(f"listing {path} returned a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise InputError(f"listing {path} returned a body that is not a List")
        out += expand_list(body)
        cont = (body.get("metadata") or {}).get("continue")
        if not cont:
            return out
    raise InputError(f"listing {path} did not end")


_Key = tuple[str, str | None, str]


def _owner(obj: dict[str, Any]) -> _Key | None:
    """The workload controller that owns ``obj`` (kind, namespace, name), if any."""
    refs = metadata(obj).get("ownerReferences")
    for r in refs if isinstance(refs, list) else []:
        if isinstance(r, dict) and r.get("controller") and r.get("kind") in WORKLOAD_KINDS:
            return str(r["kind"]), namespace_of(obj), str(r.get("name"))
    return None


def _container_names(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c.path.rsplit(".", 1)[-1].split("[")[0], c.name) for c in containers_of(spec)}


def _reported(obj: dict[str, Any], templates: dict[_Key, dict[str, Any]]) -> bool:
    """Whether ``obj`` is checked itself: not when its controller's template says the same.

    A pod differs from the template it was made from when ``kubectl debug`` added ephemeral
    containers, or a mutating webhook injected containers (a service mesh's init container with
    NET_ADMIN): nothing but the pod shows them, so such a pod is checked too."""
    owner = _owner(obj)
    if owner is None:
        return True
    if obj.get("kind") != "Pod":
        return False
    spec = pod_spec_of(obj) or {}
    if spec.get("ephemeralContainers"):
        return True
    template = templates.get(owner)
    return template is not None and _container_names(spec) != _container_names(template)
