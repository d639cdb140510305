"""What admission needs from other pillars, as small interfaces.

Vulnerability facts come from the scanning pillar through :class:`VulnSource`; the webhook never
imports scanner internals. Workload facts come from the object itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stockade.admission.images import reference_spellings
from stockade.model import Severity
from stockade.model.errors import StockadeError

__all__ = ["reference_spellings"]  # for sources that look images up: stored under any spelling


class LookupUnavailable(StockadeError):
    """A lookup that could not be made at all (scan queue full, per-review scan cap reached):
    the review cannot be decided for that image and the policy's failurePolicy applies."""


class LookupBudget:
    """What one review may spend on vulnerability lookups: one deadline that all of its lookups
    share, and a count of the on-demand scans it started (the source caps them)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + max(seconds, 0.0)
        self._scans = 0
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def take_scan(self, limit: int) -> bool:
        """Count one more on-demand scan for this review; False once ``limit`` were started."""
        with self._lock:
            if self._scans >= limit:
                return False
            self._scans += 1
            return True


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageVulns:
    """Vulnerability summary of one image, as the scan store knows it."""

    image: str
    counts: Mapping[Severity, int] = field(default_factory=dict)  # all findings by severity
    fixable_counts: Mapping[Severity, int] = field(default_factory=dict)  # those with a fix
    ids: frozenset[str] = frozenset()  # every vulnerability id and alias present
    max_cvss: float | None = None
    scanned: bool = True  # False when the image could not be scanned in the time budget
    # What the scan could not check (a distribution or ecosystem without advisory data, or no
    # package identified at all): such an image is not known to be clean.
    unchecked: tuple[str, ...] = ()

    def count_at_least(self, severity: Severity, *, fixable_only: bool = False) -> int:
        source = self.fixable_counts if fixable_only else self.counts
        return sum(n for sev, n in source.items() if sev >= severity)


class VulnSource(Protocol):
    """Looks up (and, within a time budget, produces) the vulnerability summary of an image."""

    def summary(self, image: str, *, budget: LookupBudget) -> ImageVulns | None:
        """The image's summary, or None when it is unknown and could not be scanned.

        Waits at most ``budget.remaining()``; raises :class:`LookupUnavailable` when the lookup
        cannot be made (the source is saturated)."""
        ...

    def is_ready(self, image: str) -> bool:
        """Whether ``summary`` would answer at once, from memory (lets the server skip a thread)."""
        ...

    def saturation(self) -> str | None:
        """Why new lookups are being refused right now (for health), or None."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureRequirement:
    """Whose cosign signature an image must carry: any of these keys (PEM files) or keyless
    identities (subject and OIDC issuer globs, checked against the Fulcio roots and Rekor keys)."""

    keys: tuple[str, ...] = ()
    identities: tuple[tuple[str, str], ...] = ()  # (subject, issuer)
    fulcio_roots: tuple[str, ...] = ()
    fulcio_intermediates: tuple[str, ...] = ()
    rekor_keys: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"key {k}" for k in self.keys]
        parts += [f"{subject} (issuer {issuer})" for subject, issuer in self.identities]
        return " or ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureVerdict:
    """What verifying an image's signatures against a requirement found."""

    image: str
    signed: bool
    summary: str  # one line: "signed by ..." or why not


@runtime_checkable
class SignatureSource(Protocol):
    """Verifies an image's signatures (a vulnerability source may also be one)."""

    def signatures(
        self, image: str, requirement: SignatureRequirement, *, budget: LookupBudget
    ) -> SignatureVerdict:
        """The verdict for the digest the image reference names now; waits at most
        ``budget.remaining()`` (else :class:`LookupUnavailable`)."""
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
