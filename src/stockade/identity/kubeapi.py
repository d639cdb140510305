"""Identity from the Kubernetes API: Pods, Services, Nodes, Namespaces and the owners of pods
(ReplicaSet -> Deployment, Job -> CronJob), listed and watched, kept in a :class:`Directory`.

Two scopes:

- **cluster** (``node=None``): every pod of the cluster (the controller, or a sensor reading a capture).
- **node** (``node="worker-1"``, the node agent): the node's own pods through their own watch
  (``fieldSelector=spec.nodeName=worker-1``), so their events are not queued behind the rest of the
  cluster's and a relist of the peers never blanks them, plus the **peers**, every other pod
  (``spec.nodeName!=worker-1``), because the far end of a connection is named by its pod's labels in
  events and policy. Peers are capped (``max_peers``); local pods never give way to them. Services
  (cluster IPs, which pods dial before the node translates them), Nodes (node addresses and
  hostNetwork pods) and Namespaces (their labels, for namespace selectors) are watched in both scopes.

StatefulSets, DaemonSets, Deployments and CronJobs are not watched: a pod's owner reference already
names its StatefulSet or DaemonSet, and only ReplicaSets and Jobs stand between a pod and its
Deployment or CronJob. Only small records are kept (never whole objects), each collection has a
bound (``max_objects``), and every directory change happens under the directory's lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockade.identity.directory import Directory
from stockade.identity.kubeobjects import (
    controller_of,
    labels_of,
    mapping,
    node_workload,
    pod_addresses,
    pod_owner,
    pod_workload,
    service_workload,
    valid_addresses,
)
from stockade.identity.kubewatch import Backoff, Collection, Reflector, Stats
from stockade.model.errors import ConfigError, InputError

DEFAULT_KUBECONFIG = "~/.kube/config"
PEERS = "pods@peers"
LOCAL = "pods@node"
PODS = "pods"


def api_client(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    in_cluster: bool = False,
) -> Any:
    """An official ``kubernetes.client.ApiClient`` from a kubeconfig (read within Stockade's limits
    for configuration files) or from the pod's service account."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ConfigError(
            "identity from the Kubernetes API needs the kubernetes client: "
            "pip install 'stockade[cluster]'"
        ) from None
    cfg = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            path = Path(
                kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
            ).expanduser()
            data = _read_kubeconfig(path)
            config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                data,
                context=context,
                client_configuration=cfg,
                persist_config=False,
                temp_file_path=str(path.parent),
            )
    except ConfigException as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid"
        raise ConfigError(f"kubernetes configuration: {first}") from None
    return client.ApiClient(cfg)


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    from stockade.config import parse_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read kubeconfig {path}: {reason}") from None
    data, _node = parse_yaml(text, name=f"kubeconfig {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    # relative file names are relative to the kubeconfig, as kubectl reads them
    for section, inner, keys in _FILE_FIELDS:
        for entry in data.get(section) or []:
            fields = entry.get(inner) if isinstance(entry, dict) else None
            for key in keys if isinstance(fields, dict) else ():
                value = fields.get(key)  # type: ignore[union-attr]
                if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                    fields[key] = str(path.parent / value)  # type: ignore[index]
    return data


_FILE_FIELDS = (
    ("clusters", "cluster", ("certificate-authority",)),
    ("users", "user", ("client-certificate", "client-key", "tokenFile")),
)


@dataclass(slots=True)
class _Pod:
    source: str  # the collection it came from
    meta: dict[str, Any]  # just namespace, the controller reference and pod-template-hash
    owner_key: tuple[str, str, str] | None  # (ReplicaSet|Job, namespace, name)


class KubernetesIdentity:
    """Keeps :attr:`directory` current from the API until :meth:`stop`."""

    def __init__(
        self,
        client: Any,
        *,
        node: str | None = None,
        directory: Directory | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
        watch_seconds: int = 240,
        max_objects: int = 200_000,
        max_peers: int = 100_000,
    ) -> None:
        from kubernetes import client as k

        self.client = client
        self.node = node
        self.directory = directory if directory is not None else Directory()
        self.max_objects = max_objects
        self.max_peers = max_peers
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pods: dict[str, _Pod] = {}
        self._owners: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._owned: dict[tuple[str, str, str], set[str]] = {}
        self._namespaces: dict[str, tuple[tuple[str, str], ...]] = {}
        self._seen: dict[str, set[str]] = {}  # keys seen during a relist, per collection
        self._keys: dict[str, set[str]] = {}  # keys held, per collection
        core, apps, batch = k.CoreV1Api(client), k.AppsV1Api(client), k.BatchV1Api(client)
        pods = core.list_pod_for_all_namespaces
        if node:
            pod_collections = [
                Collection(LOCAL, pods, f"spec.nodeName={node}"),
                Collection(PEERS, pods, f"spec.nodeName!={node}"),
            ]
        else:
            pod_collections = [Collection(PODS, pods)]
        collections = [
            Collection("namespaces", core.list_namespace),
            Collection("replicasets", apps.list_replica_set_for_all_namespaces),
            Collection("jobs", batch.list_job_for_all_namespaces),
            *pod_collections,
            Collection("services", core.list_service_for_all_namespaces),
            Collection("nodes", core.list_node),
        ]
        self.reflectors = [
            Reflector(c, self, backoff=Backoff(*backoff), watch_seconds=watch_seconds)
            for c in collections
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Directory:
        """Start every watch and wait until each collection has been listed once."""
        for r in self.reflectors:
            r.start()
        deadline = time.monotonic() + timeout
        while not all(r.synced.is_set() for r in self.reflectors):
            # refused for good: credentials the server rejects, or a server the CA did not sign
            refused = [
                r for r in self.reflectors if r.stats.last_status in (401, 403) or r.stats.untrusted
            ]
            left = deadline - time.monotonic()
            if refused or left <= 0:
                self.stop()
                late = (
                    refused[0]
                    if refused
                    else next(r for r in self.reflectors if not r.synced.is_set())
                )
                host = getattr(getattr(self.client, "configuration", None), "host", "?")
                why = late.stats.last_error or "no answer"
                raise InputError(
                    f"Kubernetes API {host}: could not list {late.collection.name}"
                    + ("" if refused else f" within {timeout:g}s")
                    + f" ({why})"
                )
            next(r for r in self.reflectors if not r.synced.is_set()).synced.wait(min(left, 0.05))
        return self.directory

    def stop(self) -> None:
        for r in self.reflectors:
            r.stop()

    def __enter__(self) -> KubernetesIdentity:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Stats]:
        return {r.collection.name: r.stats for r in self.reflectors}

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        with self._lock:
            return dict(self._namespaces.get(namespace, ()))

    # -- the sink the reflectors feed --------------------------------------------------------

    def relist_begin(self, collection: str) -> None:
        with self._lock:
            self._seen[collection] = set()

    def relist_end(self, collection: str) -> None:
        with self._lock:
            seen = self._seen.pop(collection, set())
            for key in self._keys.get(collection, set()) - seen:
                self._delete(collection, key)

    def apply(self, collection: str, kind: str, obj: dict[str, Any]) -> None:
        meta = mapping(obj.get("metadata"))
        key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        with self._lock:
            if collection in self._seen:
                self._seen[collection].add(key)
            if kind == "DELETED":
                self._delete(collection, key)
                return
            held = self._keys.setdefault(collection, set())
            if key not in held:
                cap = self.max_peers if collection == PEERS else self.max_objects
                if len(held) >= cap:
                    self.dropped[collection] = self.dropped.get(collection, 0) + 1
                    return
                held.add(key)
            self._upsert(collection, key, obj)

    def _upsert(self, collection: str, key: str, obj: dict[str, Any]) -> None:
        meta = mapping(obj.get("metadata"))
        if collection == "namespaces":
            self._namespaces[str(meta.get("name") or "")] = labels_of(meta)
        elif collection in ("replicasets", "jobs"):
            kind = "ReplicaSet" if collection == "replicasets" else "Job"
            ident = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            parent = controller_of(meta)
            if self._owners.get(ident, False) != parent:
                self._owners[ident] = parent
                for pod_key in sorted(self._owned.get(ident, ())):
                    self._refresh_owner(pod_key)
        elif collection == "services":
            self.directory.put(f"service/{key}", service_workload(obj))
        elif collection == "nodes":
            self.directory.put(f"node/{meta.get('name') or ''}", node_workload(obj))
        else:
            self._upsert_pod(collection, key, obj, meta)

    def _upsert_pod(
        self, collection: str, key: str, obj: dict[str, Any], meta: Mapping[str, Any]
    ) -> None:
        current = self._pods.get(key)
        if current is not None and current.source != collection:
            if collection == PEERS:
                return  # the node's own watch has it
            self._keys.get(current.source, set()).discard(key)
        self._unlink(key)
        namespace = str(meta.get("namespace") or "default")
        ref = controller_of(meta)
        hash_label = mapping(meta.get("labels")).get("pod-template-hash")
        small: dict[str, Any] = {"namespace": namespace}
        if ref is not None:
            small["ownerReferences"] = [{"kind": ref[0], "name": ref[1], "controller": True}]
        if hash_label:
            small["labels"] = {"pod-template-hash": str(hash_label)}
        owner_key = (ref[0], namespace, ref[1]) if ref and ref[0] in ("ReplicaSet", "Job") else None
        self._pods[key] = _Pod(collection, small, owner_key)
        if owner_key is not None:
            self._owned.setdefault(owner_key, set()).add(key)
        if mapping(obj.get("spec")).get("hostNetwork"):
            self.directory.remove(f"pod/{key}")  # shares the node's address, named by the node
            return
        workload = pod_workload(obj, valid_addresses(pod_addresses(obj)), self._owner_of)
        self.directory.put(f"pod/{key}", workload)

    def _refresh_owner(self, key: str) -> None:
        pod = self._pods.get(key)
        old = self.directory.entry(f"pod/{key}")
        if pod is None or old is None:
            return
        owner = pod_owner(pod.meta, self._owner_of)
        if owner != old.owner:
            from dataclasses import replace

            self.directory.put(f"pod/{key}", replace(old, owner=owner))

    def _owner_of(self, kind: str, namespace: str, name: str) -> tuple[str, str] | None:
        return self._owners.get((kind, namespace, name))

    def _unlink(self, key: str) -> None:
        pod = self._pods.get(key)
        if pod is not None and pod.owner_key is not None:
            owned = self._owned.get(pod.owner_key)
            if owned is not None:
                owned.discard(key)
                if not owned:
                    del self._owned[pod.owner_key]

    def _delete(self, collection: str, key: str) -> None:
        held = self._keys.get(collection)
        if held is None or key not in held:
            return
        held.discard(key)
        namespace, _, name = key.partition("/")
        if collection == "namespaces":
            self._namespaces.pop(name, None)
        elif collection in ("replicasets", "jobs"):
            kind = "ReplicaSet" if collection == "replicasets" else "Job"
            self._owners.pop((kind, namespace, name), None)
        elif collection == "services":
            self.directory.remove(f"service/{key}")
        elif collection == "nodes":
            self.directory.remove(f"node/{name}")
        elif self._pods.get(key) is not None and self._pods[key].source == collection:
            self._unlink(key)
            del self._pods[key]
            self.directory.remove(f"pod/{key}")
