"""Reduce a Kubernetes object to the pod spec and containers the criteria judge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stockade.admission.interface import Container, Workload

# Where each workload kind keeps its pod template spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_TEMPLATE_LABEL_PATHS: dict[str, tuple[str, ...]] = {
    kind: (*path[:-1], "metadata", "labels")
    for kind, path in _POD_SPEC_PATHS.items()
    if kind != "Pod"
}
SUPPORTED_KINDS = frozenset(_POD_SPEC_PATHS)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def pod_spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec a Pod has or a controller templates, or None for other kinds."""
    path = _POD_SPEC_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    spec = _dig(obj, path)
    return spec if isinstance(spec, Mapping) else {}


def workload_of(obj: Mapping[str, Any], *, namespace: str = "") -> Workload | None:
    """The workload view of ``obj``, or None when its kind templates no pods."""
    kind = str(obj.get("kind", ""))
    spec = pod_spec_of(obj)
    if spec is None:
        return None
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    labels: dict[str, str] = {}
    for source in (meta.get("labels"), _dig(obj, _TEMPLATE_LABEL_PATHS.get(kind, ()))):
        if isinstance(source, Mapping):
            labels.update({str(k): str(v) for k, v in source.items()})
    containers: list[Container] = []
    for field, ckind in (
        ("initContainers", "initContainer"),
        ("containers", "container"),
        ("ephemeralContainers", "ephemeralContainer"),
    ):
        items = spec.get(field)
        if not isinstance(items, list):
            continue
        for c in items:
            if isinstance(c, Mapping):
                containers.append(
                    Container(
                        name=str(c.get("name", "")),
                        image=str(c.get("image", "")),
                        kind=ckind,
                        spec=c,
                    )
                )
    name = str(meta.get("name") or meta.get("generateName") or "")
    return Workload(
        kind=kind,
        name=name,
        namespace=str(meta.get("namespace") or namespace or ""),
        labels=labels,
        pod_spec=spec,
        containers=tuple(containers),
        obj=obj,
    )
