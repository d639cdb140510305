"""Kubernetes objects as plain dicts: where the pod spec lives, and every container in it.

The admission webhook reuses :func:`pod_spec_of` and :func:`containers_of` on single objects from
AdmissionReview requests, so these functions never assume a file or a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stockade.model import ResourceRef

# kind -> path (list of keys) from the object to its pod spec
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_POD_META_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("metadata",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "metadata"),
}

WORKLOAD_KINDS = frozenset(_POD_SPEC_PATHS)
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a Pod or of a controller's pod template; None for other kinds."""
    path = _POD_SPEC_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    spec = _dig(obj, path)
    return spec if isinstance(spec, dict) else None


def pod_metadata_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The metadata the pods will carry (the template's, or the Pod's own)."""
    kind = str(obj.get("kind", ""))
    path = _POD_META_PATHS.get(kind, ("spec", "template", "metadata"))
    meta = _dig(obj, path)
    return meta if isinstance(meta, dict) else {}


def spec_path_of(kind: str) -> str:
    """The dotted field path of the pod spec, used in evidence (``spec.template.spec``)."""
    return ".".join(_POD_SPEC_PATHS.get(kind, ("spec",)))


@dataclass(frozen=True, slots=True)
class Container:
    """One container of a pod spec with the field path that names it in evidence."""

    path: str  # "spec.template.spec.containers[0]"
    name: str
    spec: dict[str, Any]

    @property
    def security_context(self) -> dict[str, Any]:
        sc = self.spec.get("securityContext")
        return sc if isinstance(sc, dict) else {}


def containers_of(pod_spec: dict[str, Any], base: str = "spec") -> Iterator[Container]:
    """Every init, regular and ephemeral container of a pod spec."""
    for field in CONTAINER_FIELDS:
        items = pod_spec.get(field)
        if not isinstance(items, list):
            continue
        for i, c in enumerate(items):
            if isinstance(c, dict):
                yield Container(path=f"{base}.{field}[{i}]", name=str(c.get("name", "")), spec=c)


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def namespace_of(obj: dict[str, Any]) -> str | None:
    ns = metadata(obj).get("namespace")
    return str(ns) if ns else None


def resource_of(obj: dict[str, Any]) -> ResourceRef:
    """The ResourceRef a finding about this object carries (kind lowercased: ``deployment``)."""
    meta = metadata(obj)
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    kind = str(obj.get("kind") or "object").lower()
    return ResourceRef(kind=kind, name=str(name), namespace=namespace_of(obj))


def expand_list(data: dict[str, Any], *, depth: int = 4) -> list[dict[str, Any]]:
    """The items of a ``List``/``PodList``/... (items from the API lack their kind), or the
    object itself; Lists nested deeper than ``depth`` are left out."""
    kind = str(data.get("kind") or "")
    items = data.get("items")
    if not kind.endswith("List") or not isinstance(items, list):
        return [data]
    if depth <= 0:
        return []
    item_kind = kind[: -len("List")]
    api_version = data.get("apiVersion")
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if not item.get("kind") and item_kind:
            item = {"kind": item_kind, "apiVersion": api_version, **item}
        out.extend(expand_list(item, depth=depth - 1))
    return out
