"""``stockade deploy manifests``: the base's objects with the overlays' changes, in Python.

The YAML files of ``base/`` are the one source: Kustomize reads them through ``deploy/base`` and
the overlays; this module reads the same files from the installed package and makes the overlays'
changes (tests/deploy/test_render.py checks both give the same objects).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from stockade.model.errors import UsageError

BASE_NAMESPACE = "stockade"
SQLITE_URL = "sqlite:////var/lib/stockade/stockade.db"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABELS = {"app.kubernetes.io/name": "stockade"}
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    ca_pem: bytes
    namespace: str = BASE_NAMESPACE
    postgres_url_secret: str | None = None  # None: single node, SQLite on a volume
    controller_replicas: int | None = None  # default 2 with PostgreSQL, 1 without
    image: str | None = None
    agent_image: str | None = None


def base_objects() -> list[dict[str, Any]]:
    """The objects of ``base/``, in the order its kustomization lists the files."""
    folder = resources.files("stockade.deploy") / "base"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        objects += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    return objects


def render(options: Options) -> list[dict[str, Any]]:
    """The objects to apply, with the CA, the store, the replicas, images and namespace set."""
    if not _DNS_LABEL.fullmatch(options.namespace):
        raise UsageError(f"--namespace {options.namespace!r} is not a Kubernetes namespace name")
    objects = base_objects()
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    controller = by_kind[("Deployment", "stockade-controller")]
    if options.postgres_url_secret is not None:
        replicas = 2 if options.controller_replicas is None else options.controller_replicas
        for env in _store_env(controller):
            env["valueFrom"]["secretKeyRef"]["name"] = options.postgres_url_secret
    else:
        replicas = 1 if options.controller_replicas is None else options.controller_replicas
        if replicas != 1:
            raise UsageError(
                "SQLite cannot be shared by controller replicas: give --postgres-url-secret "
                "for more than one"
            )
        _single_node(controller)
        objects = [o for o in objects if o["kind"] != "PodDisruptionBudget"]
        objects.append(_pvc())
    if replicas < 1:
        raise UsageError("--controller-replicas must be at least 1")
    controller["spec"]["replicas"] = replicas
    webhook = by_kind[("ValidatingWebhookConfiguration", "stockade-admission")]
    webhook["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(options.ca_pem).decode()
    objects.insert(1, _ca_secret(options.ca_pem))
    _images(objects, options.image, options.agent_image)
    if options.namespace != BASE_NAMESPACE:
        _namespace(objects, options.namespace)
    return objects


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def _store_env(controller: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for c in _containers(controller) for e in c["env"] if e["name"] == "STOCKADE_DB"]


def _single_node(controller: dict[str, Any]) -> None:
    # Same changes as deploy/overlays/single-node.
    controller["spec"]["strategy"] = {"type": "Recreate"}
    for env in _store_env(controller):
        env.pop("valueFrom")
        env["value"] = SQLITE_URL
    for volume in controller["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == "data":
            volume.pop("emptyDir")
            volume["persistentVolumeClaim"] = {"claimName": "stockade-data"}


def _pvc() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "stockade-data",
            "namespace": BASE_NAMESPACE,
            "labels": {**LABELS, "app.kubernetes.io/component": "controller"},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }


def _ca_secret(ca_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "stockade-ca", "namespace": BASE_NAMESPACE, "labels": dict(LABELS)},
        "type": "Opaque",
        "data": {"ca.crt": base64.b64encode(ca_pem).decode()},
    }


def _images(objects: list[dict[str, Any]], image: str | None, agent_image: str | None) -> None:
    if image is not None and agent_image is None:
        agent_image = _agent_image(image)
    for obj in objects:
        if obj["kind"] not in ("Deployment", "DaemonSet"):
            continue
        new = agent_image if obj["kind"] == "DaemonSet" else image
        if new is not None:
            for container in _containers(obj):
                container["image"] = new


def _agent_image(image: str) -> str:
    """``REPO:TAG`` -> ``REPO-agent:TAG``: the agent is the Containerfile's other target."""
    if "@" in image:
        raise UsageError("--image with a digest: give the agent's with --agent-image")
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon <= slash:
        raise UsageError(f"--image {image!r}: give a tag (REPO:TAG), never the latest by default")
    return f"{image[:colon]}-agent{image[colon:]}"


def _namespace(objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        elif obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        for hook in obj.get("webhooks", []):
            hook["clientConfig"]["service"]["namespace"] = namespace
            for expr in hook["namespaceSelector"]["matchExpressions"]:
                expr["values"] = [namespace if v == BASE_NAMESPACE else v for v in expr["values"]]
