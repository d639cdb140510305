"""A workload as the network sees it (and, by its cgroups, as process monitoring sees it)."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.model.resource import ResourceRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A pod (or anything else that owns addresses), or an address outside the cluster."""

    name: str
    namespace: str = ""
    kind: str = "pod"
    labels: tuple[tuple[str, str], ...] = ()
    owner: str = ""  # the top controller: "Deployment/web", "CronJob/report"
    node: str = ""
    addresses: tuple[str, ...] = ()
    external: bool = False  # plays "outside the cluster" (the lab's internet pod, a partner CIDR)
    images: tuple[
        str, ...
    ] = ()  # what runs, by digest: "registry/repo@sha256:..." (from the runtime)
    cgroups: tuple[str, ...] = ()  # cgroup v2 paths of its processes: "/stockade.slice/sk-orders"

    def ref(self, address: str = "") -> ResourceRef:
        if self.external:
            return ResourceRef(kind="external", name=address or self.name, labels=self.labels)
        return ResourceRef(
            kind=self.kind, name=self.name, namespace=self.namespace or None, labels=self.labels
        )

    def display(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name
