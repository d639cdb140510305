"""Protocol detection from the first bytes of both directions of a connection, never the port.

Whether a connection that upgrades in-band (SSLRequest, STARTTLS, ...) ended up encrypted is
not the detectors' call: :func:`upgrades.judge` gives that one answer, here and to the enforcer.

Every detector module exposes ``SLUG`` and ``probe(client, server) -> Guess | None``. ``detect``
asks each detector in the explicit order of :data:`DETECTORS` and keeps the most confident answer;
on equal confidence the earlier detector wins, so the more specific protocols come first (gRPC
before HTTP/2, HTTP/2's h2c upgrade before HTTP/1, PostgreSQL before Kafka whose header the
StartupMessage also fits).
"""

from __future__ import annotations

from types import ModuleType

from ..interface import Detection
from . import (
    dns,
    grpc,
    http1,
    http2,
    imap,
    kafka,
    mongodb,
    mysql,
    pop3,
    postgres,
    redis,
    smtp,
    ssh,
    upgrades,
)
from . import tls as tls_detector
from .base import FULL, MIN_CONFIDENCE, Guess

UNKNOWN = "proto.unknown"

DETECTORS: tuple[ModuleType, ...] = (
    tls_detector,
    ssh,
    grpc,
    http2,
    http1,
    postgres,
    mysql,
    mongodb,
    kafka,
    redis,
    dns,
    smtp,
    imap,
    pop3,
)

SLUGS: tuple[str, ...] = (*(d.SLUG for d in DETECTORS), UNKNOWN)


def detect(client: bytes, server: bytes) -> Detection:
    """The protocol of one connection from the first bytes each side sent (either may be empty)."""
    best: Guess | None = None
    for detector in DETECTORS:
        guess = detector.probe(client, server)
        if guess is not None and (best is None or guess.confidence > best.confidence):
            best = guess
            if best.confidence >= FULL:
                break
    judged = upgrades.judge(client, server)
    if best is None or best.confidence < MIN_CONFIDENCE:
        if judged is not None and judged.state == "encrypted":  # LDAP, XMPP: no detector
            return Detection(protocol=UNKNOWN, encrypted=True, upgrade=judged.kind, confidence=0.0)
        return Detection(protocol=UNKNOWN, confidence=0.0)
    encrypted, upgrade = best.encrypted, best.upgrade
    if judged is not None:
        encrypted = judged.state == "encrypted"
        upgrade = judged.kind if encrypted else upgrade
    return Detection(
        protocol=best.protocol,
        encrypted=encrypted,
        upgrade=upgrade,
        details=best.details,
        confidence=best.confidence,
    )


__all__ = ["DETECTORS", "SLUGS", "UNKNOWN", "detect"]
