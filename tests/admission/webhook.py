"""AdmissionReview requests built as the API server does, from real manifests, and a real webhook process."""

from __future__ import annotations

import copy
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Webhook:
    url: str
    ca: Path
    db: str
    proc: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=10)


def start_webhook(tmp: Path, *extra: str) -> Webhook:
    port = free_port()
    db = f"sqlite:///{tmp / 'stockade.db'}"
    cert_dir = tmp / "certs"
    cmd = [
        sys.executable,
        "-m",
        "stockade",
        "admission",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cert-dir",
        str(cert_dir),
        "--db",
        db,
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    hook = Webhook(url=f"https://127.0.0.1:{port}", ca=cert_dir / "ca.crt", db=db, proc=proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"webhook exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        if hook.ca.exists():
            try:
                with hook.client() as c:
                    if c.get("/healthz").status_code == 200:
                        return hook
            except (httpx.TransportError, ssl.SSLError):
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("webhook did not start in 30 s")


def stop_webhook(hook: Webhook) -> str:
    hook.proc.terminate()
    try:
        _, err = hook.proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        hook.proc.kill()
        _, err = hook.proc.communicate()
    return err.decode()
