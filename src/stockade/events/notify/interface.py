"""The values that cross the notifier boundary: a target, one attempt, the delivery, the error.

A notifier is built from a :class:`Target` and sends one event (already masked, as a JSON-ready
dict) per call of ``send``; it raises :class:`NotifyError` when the receiver did not take it, saying
whether trying again could help. Retries, back-off, filters and the dead-letter list are the
dispatcher's business, not the notifier's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stockade.model import Event, Severity, StockadeError

MAX_ATTEMPTS = 10
MAX_BACKOFF = 300.0
MAX_TIMEOUT = 120.0


class NotifyError(StockadeError):
    """A receiver did not take a notification. ``retryable`` when a later attempt may succeed
    (timeout, refused connection, HTTP 5xx/429, SMTP 4xx); not when it cannot (HTTP 4xx, a
    certificate that does not verify, a recipient refused for good)."""

    exit_code = 3

    def __init__(self, message: str, *, retryable: bool = True, subject: str | None = None) -> None:
        super().__init__(message, subject=subject)
        self.retryable = retryable


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``attempts`` in all (the first one included), waiting ``backoff`` seconds after the first
    failure and twice as long after each next one, never more than ``max_backoff``."""

    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts must be between 1 and {MAX_ATTEMPTS}")
        if not 0 <= self.backoff <= self.max_backoff <= MAX_BACKOFF:
            raise ValueError(f"need 0 <= backoff <= max_backoff <= {MAX_BACKOFF:g}")

    def delays(self) -> Iterator[float]:
        """The waits between attempts: ``attempts - 1`` of them."""
        for n in range(self.attempts - 1):
            yield min(self.max_backoff, self.backoff * 2**n)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where notifications go, and which ones: events whose category (``kind`` up to the first dot)
    is in ``categories`` (all when empty) and whose severity is at least ``min_severity``."""

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()
    min_severity: Severity = Severity.UNKNOWN
    timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def accepts(self, event: Event) -> bool:
        category = event.kind.split(".", 1)[0]
        if self.categories and category not in self.categories:
            return False
        return event.severity >= self.min_severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at one delivery: the id stays the same across retries and redeliveries, so a
    receiver can drop a copy it already has."""

    delivery_id: str
    target: str
    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What became of one event at one target."""

    target: str
    kind: str
    delivery_id: str
    ok: bool
    attempts: int
    error: str | None = None
    dead_letter: bool = False  # kept in the dead-letter list for a later redelivery


class Notifier(Protocol):
    def send(self, event: Mapping[str, Any], attempt: Attempt) -> None:
        """Hand ``event`` (masked, JSON-ready) to the receiver or raise :class:`NotifyError`."""
