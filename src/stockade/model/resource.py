"""References to the things Stockade looks at: images, nodes, pods, files, connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceRef:
    """What a finding or event is about.

    ``kind`` is a short lowercase word: ``image``, ``package``, ``node``, ``host``, ``pod``,
    ``workload``, ``manifest``, ``file``, ``registry``, ``connection``, ``external``.
    """

    kind: str
    name: str
    namespace: str | None = None
    digest: str | None = None
    labels: tuple[tuple[str, str], ...] = field(default=())

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def display(self) -> str:
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}:{prefix}{self.name}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.digest is not None:
            out["digest"] = self.digest
        if self.labels:
            out["labels"] = dict(self.labels)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceRef:
        return cls(
            kind=str(data["kind"]),
            name=str(data["name"]),
            namespace=data.get("namespace"),
            digest=data.get("digest"),
            labels=tuple(sorted((str(k), str(v)) for k, v in (data.get("labels") or {}).items())),
        )
