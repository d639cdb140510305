"""Build AdmissionReview requests the way the API server does, from real manifests."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "admission"

_PLURAL = {
    "Pod": "pods",
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ConfigMap": "configmaps",
    "ReplicationController": "replicationcontrollers",
    "Service": "services",
}


def manifests() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((EXAMPLES / "manifests" / "workloads.yaml").read_text())
    return {f"{d['kind']}/{d['metadata']['namespace']}/{d['metadata']['name']}": d for d in docs}


def review_for(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    api_version: str = "admission.k8s.io/v1",
    user: str = "alice@example.com",
    namespace: str | None = None,
) -> dict[str, Any]:
    group, _, version = obj.get("apiVersion", "v1").rpartition("/")
    gvk = {"group": group, "version": version, "kind": obj["kind"]}
    gvr = {
        "group": group,
        "version": version,
        "resource": _PLURAL.get(obj["kind"], obj["kind"].lower() + "s"),
    }
    meta = obj.get("metadata", {})
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": meta.get("name", ""),
            "namespace": namespace or meta.get("namespace", "default"),
            "operation": operation,
            "userInfo": {"username": user, "uid": "u-1", "groups": ["system:authenticated"]},
            "object": None if operation == "DELETE" else copy.deepcopy(obj),
            "oldObject": copy.deepcopy(obj) if operation in ("UPDATE", "DELETE") else None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
