"""Kubernetes API objects (plain dicts, as the API or ``kubectl -o json`` gives them) -> workloads.

Shared by the static file provider (``static.py``) and the live one (``kubeapi.py``): a Pod is a
workload named after the pod, owned by its top controller (``Deployment/web``, ``CronJob/report``,
``StatefulSet/db``, ``DaemonSet/agent``); a Service is its cluster IPs; a Node its addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from stockade.identity.model import Workload

# (kind, namespace, name) of a ReplicaSet or Job -> its own controller (kind, name), if known
OwnerLookup = Callable[[str, str, str], "tuple[str, str] | None"]

INTERMEDIATE_OWNERS = ("ReplicaSet", "Job")  # their pods' real workload is their controller's


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def controller_of(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the owner reference marked ``controller`` (else the first one)."""
    refs = [mapping(r) for r in meta.get("ownerReferences") or [] if isinstance(r, Mapping)]
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref or not ref.get("kind") or not ref.get("name"):
        return None
    return str(ref["kind"]), str(ref["name"])


def labels_of(meta: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in mapping(meta.get("labels")).items()))


def pod_owner(meta: Mapping[str, Any], owners: OwnerLookup | None = None) -> str:
    """The pod's top controller: through its ReplicaSet to the Deployment and through its Job to the
    CronJob when ``owners`` knows them; otherwise a ReplicaSet named ``<deployment>-<hash>`` with
    the pod's ``pod-template-hash`` label is taken to belong to that Deployment."""
    ref = controller_of(meta)
    if ref is None:
        return ""
    kind, name = ref
    if kind in INTERMEDIATE_OWNERS and owners is not None:
        parent = owners(kind, str(meta.get("namespace") or "default"), name)
        if parent is not None:
            return f"{parent[0]}/{parent[1]}"
    template_hash = str(mapping(meta.get("labels")).get("pod-template-hash") or "")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"Deployment/{name[: -len(template_hash) - 1]}"
    return f"{kind}/{name}"


def pod_addresses(pod: Mapping[str, Any]) -> list[str]:
    """The pod's IPs as written (``podIPs``, else ``podIP``); none for hostNetwork pods, which
    share the node's address, and for finished pods, whose address is free again."""
    spec, status = mapping(pod.get("spec")), mapping(pod.get("status"))
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return []
    ips = [mapping(p).get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    return [str(ip) for ip in ips if ip]


def image_digest(image_id: str) -> str:
    """``docker-pullable://repo@sha256:...`` (dockershim) or ``repo@sha256:...`` (containerd,
    CRI-O) -> ``repo@sha256:...``; an image ID without a repository stays ``sha256:...``."""
    return image_id.split("://", 1)[1] if "://" in image_id else image_id


def pod_images(pod: Mapping[str, Any]) -> tuple[str, ...]:
    status = mapping(pod.get("status"))
    found: list[str] = []
    for field in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(field) or []:
            image_id = str(mapping(cs).get("imageID") or "")
            digest = image_digest(image_id)
            if digest and digest not in found:
                found.append(digest)
    return tuple(found)


def pod_workload(
    pod: Mapping[str, Any], addresses: list[str], owners: OwnerLookup | None = None
) -> Workload:
    meta, spec = mapping(pod.get("metadata")), mapping(pod.get("spec"))
    return Workload(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        labels=labels_of(meta),
        owner=pod_owner(meta, owners),
        node=str(spec.get("nodeName") or ""),
        addresses=tuple(addresses),
        images=pod_images(pod),
    )


def valid_addresses(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        try:
            out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            continue
    return out


def service_workload(svc: Mapping[str, Any]) -> Workload:
    """A Service by its cluster IPs (what a pod dials before the node translates it)."""
    meta, spec = mapping(svc.get("metadata")), mapping(svc.get("spec"))
    ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip]
    return Workload(
        kind="service",
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        labels=labels_of(meta),
        addresses=tuple(valid_addresses([ip for ip in ips if ip != "None"])),
    )


def node_workload(node: Mapping[str, Any]) -> Workload:
    """A Node by its internal and external addresses (and every hostNetwork pod on it)."""
    meta, status = mapping(node.get("metadata")), mapping(node.get("status"))
    ips = [
        str(mapping(a).get("address") or "")
        for a in status.get("addresses") or []
        if mapping(a).get("type") in ("InternalIP", "ExternalIP")
    ]
    name = str(meta.get("name") or "")
    return Workload(
        kind="node",
        name=name,
        labels=labels_of(meta),
        node=name,
        addresses=tuple(dict.fromkeys(valid_addresses(ips))),
    )
