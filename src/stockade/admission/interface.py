"""What admission needs from other pillars, as small interfaces.

Vulnerability facts come from the scanning pillar through :class:`VulnSource`; the webhook never
imports scanner internals. Workload facts come from the object itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stockade.model import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageVulns:
    """Vulnerability summary of one image, as the scan store knows it."""

    image: str
    counts: Mapping[Severity, int] = field(default_factory=dict)  # all findings by severity
    fixable_counts: Mapping[Severity, int] = field(default_factory=dict)  # those with a fix
    ids: frozenset[str] = frozenset()  # every vulnerability id and alias present
    max_cvss: float | None = None
    scanned: bool = True  # False when the image could not be scanned in the time budget

    def count_at_least(self, severity: Severity, *, fixable_only: bool = False) -> int:
        source = self.fixable_counts if fixable_only else self.counts
        return sum(n for sev, n in source.items() if sev >= severity)


class VulnSource(Protocol):
    """Looks up (and, within a time budget, produces) the vulnerability summary of an image."""

    def summary(self, image: str, *, budget_s: float) -> ImageVulns | None:
        """The image's summary, or None when it is unknown and could not be scanned in time."""
        ...

    def is_ready(self, image: str) -> bool:
        """Whether ``summary`` would answer at once, from memory (lets the server skip a thread)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """One container of a workload, with where it sits in the object."""

    name: str
    image: str
    kind: str  # "container", "initContainer", "ephemeralContainer"
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """An object under review, reduced to what the criteria read."""

    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    pod_spec: Mapping[str, Any]
    containers: tuple[Container, ...]
    obj: Mapping[str, Any]

    def display(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"
