"""Quarantine's cluster half: a labelled deny-all NetworkPolicy per quarantined pod, written through
the Kubernetes API so the cluster's own CNI cuts the pod too (the enforcer's nft rules cut it on
the node). Off unless asked for (``stockade enforcer --quarantine-network-policy``, passed on by
``stockade agent run``).

:class:`ClusterQuarantine` follows the controller's quarantine list as the nft side does, in the
same call (:class:`~stockade.firewall.enforce.follow.QuarantineFollower`), so both are set and
lifted together:

- a listed pod this node can name gets ``stockade-quarantine-<pod>`` in its namespace:
  ``podSelector.matchLabels`` = the pod's labels, ``policyTypes: [Ingress, Egress]`` and no rule,
  which denies everything both ways; labelled ``app.kubernetes.io/managed-by: stockade`` and
  ``stockade.dev/quarantine: "true"``, the pod named in the ``stockade.dev/workload`` annotation;
- a policy of Stockade's whose pod the controller no longer lists is deleted.

Every node's enforcer does the same for the same list: ``409 AlreadyExists`` means another node
wrote it (read back and kept when it selects the same labels), ``404 NotFound`` on delete means
another node deleted it. What exists is listed once (by the labels above, cluster-wide) and then
kept in memory; after a failure it is listed again. Failures are ``firewall.quarantine_policy_failed``
events (one per streak) and the caller retries; nothing here raises. A pod without labels gets no
policy: an empty selector would cut its whole namespace. Verbs used: networkpolicies create,
delete, get, list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from stockade.identity.kubeobjects import mapping
from stockade.model import Event, ResourceRef, Severity

log = logging.getLogger(__name__)

MANAGED = {"app.kubernetes.io/managed-by": "stockade", "stockade.dev/quarantine": "true"}
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
WORKLOAD = "stockade.dev/workload"
PREFIX = "stockade-quarantine-"
MAX_NAME = 253  # a NetworkPolicy's name is a DNS subdomain
RETRY_AFTER = 5.0  # seconds between attempts while the API fails


def policy_name(pod: str) -> str:
    """``stockade-quarantine-<pod>``, shortened with a hash when the pod's name is too long."""
    name = PREFIX + pod
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(pod.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11].rstrip('-.')}-{digest}"


def policy_document(workload: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The deny-all NetworkPolicy for pod ``namespace/name`` selected by its ``labels``."""
    namespace, _, pod = workload.partition("/")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(pod),
            "namespace": namespace,
            "labels": dict(MANAGED),
            "annotations": {WORKLOAD: workload},
        },
        "spec": {
            "podSelector": {"matchLabels": dict(sorted(labels.items()))},
            # both types and no rule: nothing in, nothing out
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def _selected(doc: Mapping[str, Any]) -> dict[str, str]:
    labels = mapping(mapping(mapping(doc.get("spec")).get("podSelector")).get("matchLabels"))
    return {str(k): str(v) for k, v in labels.items()}


def _ours(doc: Mapping[str, Any]) -> str | None:
    """The workload a policy quarantines, when it is one of Stockade's."""
    meta = mapping(doc.get("metadata"))
    labels = mapping(meta.get("labels"))
    if any(labels.get(k) != v for k, v in MANAGED.items()):
        return None
    workload = mapping(meta.get("annotations")).get(WORKLOAD)
    return workload if isinstance(workload, str) and "/" in workload else None


class ClusterQuarantine:
    """Keep Stockade's quarantine NetworkPolicies equal to the controller's list."""

    def __init__(
        self,
        client: Any,
        *,
        node: str,
        emit: Callable[[Event], None],
        timeout: float = 10.0,
    ) -> None:
        from kubernetes import client as k

        self.api = k.NetworkingV1Api(client)
        self.node = node
        self.emit = emit
        self.timeout = timeout
        # workload -> (namespace, policy name, selected labels); None: list before trusting it
        self.known: dict[str, tuple[str, str, dict[str, str]]] | None = None
        self._failing = False
        self._retry_at = 0.0
        self._unlabelled: set[str] = set()

    def sync(self, wanted: set[str], labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Delete the policies of workloads not in ``wanted``; write one for each wanted workload
        whose pod labels this node knows (``labels``). False when the API failed (retry later)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if time.monotonic() < self._retry_at:
            return False
        try:
            if self.known is None:
                self.known = self._list()
            for workload in sorted(set(self.known) - wanted):
                self._delete(workload)
            self._unlabelled &= wanted
            for workload in sorted(wanted & set(labels)):
                self._ensure(workload, dict(labels[workload]))
        except (ApiException, HTTPError, OSError, ValueError) as exc:
            self.known = None
            self._retry_at = time.monotonic() + RETRY_AFTER
            self._failed(exc)
            return False
        self._failing = False
        return True

    # -- the API calls --------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        resp = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        body = json.loads(resp.data)
        if not isinstance(body, dict):
            raise ValueError("the API answered something else than an object")
        return body

    def _list(self) -> dict[str, tuple[str, str, dict[str, str]]]:
        body = self._call(self.api.list_network_policy_for_all_namespaces, label_selector=SELECTOR)
        known = {}
        for item in body.get("items") or []:
            workload = _ours(item) if isinstance(item, dict) else None
            if workload is not None:
                meta = item["metadata"]
                known[workload] = (
                    str(meta.get("namespace")),
                    str(meta.get("name")),
                    _selected(item),
                )
        return known

    def _delete(self, workload: str) -> None:
        from kubernetes.client.exceptions import ApiException

        assert self.known is not None
        namespace, name, _ = self.known[workload]
        try:
            self._call(self.api.delete_namespaced_network_policy, name, namespace)
        except ApiException as exc:
            if exc.status != 404:  # 404: another node's enforcer deleted it first
                raise
        else:
            self._event("deleted", workload, f"{namespace}/{name}", Severity.LOW)
        del self.known[workload]

    def _ensure(self, workload: str, labels: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        assert self.known is not None
        if not labels:
            if workload not in self._unlabelled:  # said once
                self._unlabelled.add(workload)
                self._event(
                    "skipped",
                    workload,
                    "",
                    Severity.MEDIUM,
                    "the pod has no labels: an empty selector would cut its whole namespace",
                )
            return
        doc = policy_document(workload, labels)
        namespace, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
        held = self.known.get(workload)
        if held is not None and held[2] == labels:
            return
        if held is not None:  # the pod's labels changed: a new selector
            self._delete(workload)
        try:
            self._call(self.api.create_namespaced_network_policy, namespace, doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # 409: another node wrote it first, or a policy of that name is someone else's
            current = self._call(self.api.read_namespaced_network_policy, name, namespace)
            if _ours(current) != workload:
                raise ValueError(
                    f"NetworkPolicy {namespace}/{name} exists and is not Stockade's"
                ) from None
            if _selected(current) != labels:
                self.known[workload] = (namespace, name, _selected(current))
                self._delete(workload)
                self._call(self.api.create_namespaced_network_policy, namespace, doc)
                self._event("written", workload, f"{namespace}/{name}", Severity.MEDIUM)
        else:
            self._event("written", workload, f"{namespace}/{name}", Severity.MEDIUM)
        self.known[workload] = (namespace, name, labels)

    # -- events ---------------------------------------------------------------------------------

    def _event(
        self, what: str, workload: str, policy: str, severity: Severity, why: str = ""
    ) -> None:
        namespace, _, pod = workload.partition("/")
        message = {
            "written": f"deny-all NetworkPolicy {policy} written for quarantined {workload}",
            "deleted": f"quarantine NetworkPolicy {policy} of {workload} deleted",
            "skipped": f"no quarantine NetworkPolicy for {workload}: {why}",
        }[what]
        self.emit(
            Event(
                kind=f"firewall.quarantine_policy_{what}",
                message=message,
                severity=severity,
                source="enforcer",
                node=self.node,
                resource=ResourceRef(kind="pod", name=pod, namespace=namespace or None),
                data={"networkpolicy": policy, "workload": workload, "node": self.node},
            )
        )

    def _failed(self, exc: Exception) -> None:
        status = getattr(exc, "status", None)
        reason = getattr(exc, "reason", None)
        error = f"HTTP {status} {reason}" if isinstance(status, int) else str(exc)
        error = error.splitlines()[0][:500] if error else type(exc).__name__
        if self._failing:
            return
        self._failing = True
        log.error("quarantine NetworkPolicies not in step with the controller: %s", error)
        self.emit(
            Event(
                kind="firewall.quarantine_policy_failed",
                message=(
                    f"quarantine NetworkPolicies could not be written or deleted from {self.node}"
                    f" (retried): {error}"
                ),
                severity=Severity.HIGH,
                source="enforcer",
                node=self.node,
                data={"node": self.node, "error": error},
            )
        )
