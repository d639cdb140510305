"""Reduce a Kubernetes object to the pod spec and containers the criteria judge.

Where the pod spec lives in each kind is the compliance pillar's knowledge
(``stockade.k8s.objects``); this module only shapes it for admission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stockade.admission.interface import Container, Workload
from stockade.k8s.objects import (
    WORKLOAD_KINDS,
    containers_of,
    metadata,
    pod_metadata_of,
    pod_spec_of,
)

SUPPORTED_KINDS = WORKLOAD_KINDS
_KIND_OF_FIELD = {
    "initContainers": "initContainer",
    "containers": "container",
    "ephemeralContainers": "ephemeralContainer",
}


def container_kind(path: str) -> str:
    """``container``, ``initContainer`` or ``ephemeralContainer``, from the container's field path
    (``spec.template.spec.initContainers[0]``)."""
    return _KIND_OF_FIELD[path.rsplit(".", 1)[-1].split("[")[0]]


def workload_of(obj: Mapping[str, Any], *, namespace: str = "") -> Workload | None:
    """The workload view of ``obj``, or None when its kind templates no pods."""
    data = dict(obj)
    if str(data.get("kind", "")) not in WORKLOAD_KINDS:
        return None
    spec = pod_spec_of(data) or {}
    meta = metadata(data)
    labels: dict[str, str] = {}
    for source in (meta.get("labels"), pod_metadata_of(data).get("labels")):
        if isinstance(source, Mapping):
            labels.update({str(k): str(v) for k, v in source.items()})
    containers = tuple(
        Container(
            name=c.name,
            image=str(c.spec.get("image", "")),
            kind=container_kind(c.path),
            spec=c.spec,
        )
        for c in containers_of(spec)
    )
    return Workload(
        kind=str(data["kind"]),
        name=str(meta.get("name") or meta.get("generateName") or ""),
        namespace=str(meta.get("namespace") or namespace or ""),
        labels=labels,
        pod_spec=spec,
        containers=containers,
        obj=obj,
    )
