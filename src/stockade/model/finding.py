"""One Finding type for every pillar, and one Event envelope for everything that happens.

Per-pillar facts travel in ``details``: a frozen dataclass defined by the pillar (in its own
``interface`` module) that subclasses :class:`Details`, so the model imports no pillar.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from stockade.model.envelope import event_fields, event_values
from stockade.model.resource import ResourceRef
from stockade.model.severity import Severity
from stockade.model.slots import slot_constructor


class Pillar(StrEnum):
    SCANNING = "scanning"
    COMPLIANCE = "compliance"
    NETWORK = "network"
    FIREWALL = "firewall"
    ADMISSION = "admission"


class Status(StrEnum):
    """Outcome of a check; vulnerabilities and DLP hits are always FAIL."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    INFO = "INFO"
    ERROR = "ERROR"
    NOT_APPLICABLE = "NOT_APPLICABLE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Details:
    """Base of the per-pillar detail records. Subclasses are frozen dataclasses too."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(dataclasses.asdict(self))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A thing found wrong (or checked and found right) about one resource."""

    id: str  # stable: CVE/GHSA id, check slug (k8s.apiserver.anonymous_auth), sensor (dlp.payment_card)
    pillar: Pillar
    title: str
    severity: Severity
    resource: ResourceRef
    status: Status = Status.FAIL
    details: Details | None = None
    compliance: tuple[str, ...] = ()  # e.g. ("pci-dss:2.2.1", "hipaa:164.312(a)(1)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pillar": str(self.pillar),
            "title": self.title,
            "severity": str(self.severity),
            "status": str(self.status),
            "resource": self.resource.to_dict(),
            "details": self.details.to_dict() if self.details else None,
            "compliance": list(self.compliance),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID's 32 hex digits: the milliseconds since the epoch,
    then 74 random bits. Ids made close in time sort together, so a store's primary key takes
    new events at a few pages instead of a random page each (on PostgreSQL with a million
    events stored: a tenth less of the server's CPU an event). Built by hand (every event of a
    webhook review makes one; ``uuid.uuid4()`` costs six times as much)."""
    b = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    b[6] = b[6] & 0x0F | 0x70  # version 7
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    return b.hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened, as the event store keeps it (append-only): the one envelope of
    every source (sensor, DLP, firewall, admission, scans, CIS runs, quarantine, response actions,
    configuration changes).

    ``kind`` is a dotted slug: ``dlp.sensitive_in_clear``, ``tls.weak_version``,
    ``firewall.violation``, ``admission.decision``, ``scan.completed``; its first part is the
    ``category``. ``resource`` is the workload (namespace, name, labels, image digest), ``peer``
    the other end; network facts (ports, application, encryption), masked evidence and anything
    else specific to the kind travel in ``data``. ``action`` is what was done (``alert``,
    ``block``, ``quarantine``...), ``mode`` the enforcement mode it was done in, ``node`` where,
    ``rule`` the rule that decided, and ``count`` how many occurrences this one event stands for
    (aggregation).
    """

    kind: str
    message: str
    severity: Severity = Severity.UNKNOWN
    source: str = "stockade"
    resource: ResourceRef | None = None
    peer: ResourceRef | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=_now)
    id: str = field(default_factory=_new_id)
    action: str | None = None
    mode: str | None = None
    node: str | None = None
    rule: str | None = None
    count: int = 1

    @property
    def category(self) -> str:
        """``kind`` up to its first dot: ``dlp``, ``firewall``, ``audit``..."""
        return self.kind.partition(".")[0]

    @property
    def level(self) -> Severity:
        return self.severity

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "category": self.category,
            "at": self.at.isoformat(),
            "severity": str(self.severity),
            "source": self.source,
            "message": self.message,
            "resource": self.resource.to_dict() if self.resource else None,
            "peer": self.peer.to_dict() if self.peer else None,
            "data": plain(self.data),
            "action": self.action,
            "mode": self.mode,
            "node": self.node,
            "rule": self.rule,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, value: Any) -> Event:
        """An event received from outside (an agent's batch), validated: raises
        :class:`~stockade.model.errors.InputError` with a one-line reason. Inverse of
        :meth:`to_dict` (``category`` is derived and ignored when it agrees with ``kind``)."""
        if cls is Event:  # every field is given: filled slot by slot (an agent's batch holds 1000)
            values = event_values(value)
            if values is not None:  # the common shape, checked at once
                return _event_of(*values)
            return _new_event(**event_fields(value))
        return cls(**event_fields(value))


_new_event = slot_constructor(Event)
_event_of = slot_constructor(Event, positional=True)

_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})  # exactly these: not enums


def plain(value: Any) -> Any:
    """Turn enums, datetimes, tuples and nested dataclasses into JSON-ready values."""
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Severity):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    return value
