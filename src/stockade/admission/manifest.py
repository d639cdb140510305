"""The ValidatingWebhookConfiguration that points the API server at ``stockade admission serve``."""

from __future__ import annotations

import base64
from typing import Any

import yaml

RESOURCES = [
    "pods",
    "pods/ephemeralcontainers",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "replicationcontrollers",
    "jobs",
    "cronjobs",
]


def webhook_configuration(
    *,
    ca_pem: bytes,
    service: str = "stockade-admission",
    namespace: str = "stockade",
    path: str = "/validate",
    port: int = 443,
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": "stockade-admission",
            "labels": {"app.kubernetes.io/name": "stockade"},
        },
        "webhooks": [
            {
                "name": "validate.admission.stockade.dev",
                "admissionReviewVersions": ["v1", "v1beta1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": timeout_seconds,
                "matchPolicy": "Equivalent",
                "clientConfig": {
                    "service": {
                        "namespace": namespace,
                        "name": service,
                        "path": path,
                        "port": port,
                    },
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE", "UPDATE"],
                        "apiGroups": ["", "apps", "batch"],
                        "apiVersions": ["v1"],
                        "resources": RESOURCES,
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["kube-system", namespace],
                        }
                    ]
                },
            }
        ],
    }


def render(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
