"""Protocol detection from the first bytes of both directions of a connection, never the port.

Whether a connection that upgrades in-band (SSLRequest, STARTTLS, ...) ended up encrypted is
not the detectors' call: :func:`upgrades.judge` gives that one answer, here and to the enforcer.

Every detector module exposes ``SLUG`` and ``probe(client, server) -> Guess | None``. ``detect``
asks each detector in the explicit order of :data:`DETECTORS` and keeps the most confident answer;
on equal confidence the earlier detector wins, so the more specific protocols come first (gRPC
before HTTP/2, HTTP/2's h2c upgrade before HTTP/1, PostgreSQL before Kafka whose header the
StartupMessage also fits).

While the server has sent nothing (a connection's first segment), a detector module may declare
``CLIENT_ONLY_CEILING``, the highest confidence its probe can give then (FULL when it does not):
the search stops as soon as no later detector could beat the best answer so far, with the same
result as asking all of them (``exhaustive=True``, the reference the tests compare against).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from stockade.model.slots import slot_constructor

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
    quic,
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
    quic,
    dns,
    smtp,
    imap,
    pop3,
)

SLUGS: tuple[str, ...] = (*(d.SLUG for d in DETECTORS), UNKNOWN)

# (probe, the highest confidence any later detector gives without server bytes), in order
_CLIENT_ONLY: tuple[tuple[Callable[[bytes, bytes], Guess | None], float], ...] = tuple(
    (
        d.probe,
        max(
            (getattr(later, "CLIENT_ONLY_CEILING", FULL) for later in DETECTORS[i + 1 :]),
            default=0.0,
        ),
    )
    for i, d in enumerate(DETECTORS)
)


def detect(client: bytes, server: bytes, *, exhaustive: bool = False) -> Detection:
    """The protocol of one connection from the first bytes each side sent (either may be empty).

    ``exhaustive``: ask every detector even where the ceilings say none can change the answer."""
    best: Guess | None = None
    if server or exhaustive:
        for detector in DETECTORS:
            guess = detector.probe(client, server)
            if guess is not None and (best is None or guess.confidence > best.confidence):
                best = guess
                if best.confidence >= FULL:
                    break
    else:
        for probe, later in _CLIENT_ONLY:
            guess = probe(client, server)
            if guess is not None and (best is None or guess.confidence > best.confidence):
                best = guess
            if best is not None and best.confidence >= later:
                break  # equal confidence: the earlier detector wins anyway
    judged = upgrades.judge(client, server)
    if best is None or best.confidence < MIN_CONFIDENCE:
        if judged is not None and judged.state == "encrypted":  # LDAP, XMPP: no detector
            return Detection(protocol=UNKNOWN, encrypted=True, upgrade=judged.kind, confidence=0.0)
        return Detection(protocol=UNKNOWN, confidence=0.0)
    encrypted, upgrade = best.encrypted, best.upgrade
    if judged is not None:
        encrypted = judged.state == "encrypted"
        upgrade = judged.kind if encrypted else upgrade
    return _new_detection(best.protocol, encrypted, upgrade, best.details, best.confidence)


_BY_SLUG: dict[str, ModuleType] = {d.SLUG: d for d in DETECTORS}


def could_become(slug: str, client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make ``detect`` answer ``slug`` with confidence (a whole
    first message): False only where that protocol's detector module says so with
    ``possible(client, server)``; detectors without it are given the benefit of the doubt. The
    enforcer uses it to judge early a connection that a rule naming protocols waits on."""
    module = _BY_SLUG.get(slug)
    possible = getattr(module, "possible", None)
    return True if possible is None else bool(possible(client, server))


def refines(slug: str, detected: str) -> bool:
    """Whether a connection detected as ``detected`` can still turn out ``slug`` (its module's
    ``REFINES``): gRPC is HTTP/2 with the right headers, HTTP/2 may follow an HTTP/1 upgrade."""
    return detected in getattr(_BY_SLUG.get(slug), "REFINES", ())


def possible_any(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make any detector answer (``proto.unknown`` is then not
    settled yet)."""
    return any(could_become(d.SLUG, client, server) for d in DETECTORS)


# Detection built without its frozen __init__ (one a flow), fields in declaration order
# (protocol, encrypted, upgrade, details, confidence); tests hold the two equal.
_new_detection = slot_constructor(Detection, positional=True)


__all__ = ["DETECTORS", "SLUGS", "UNKNOWN", "could_become", "detect", "possible_any", "refines"]
