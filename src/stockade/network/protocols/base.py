"""What a protocol detector returns, and helpers shared by several detectors."""

from __future__ import annotations

from dataclasses import dataclass

from stockade.model.slots import slot_constructor

# Confidence scale shared by every detector:
#   1.0  both directions agree, or one direction is unambiguous by itself (a banner, a preface)
#   0.8  one direction carries a complete, well-formed first message
#   0.5  a well-formed prefix that was cut short (fewer bytes than the message claims)
#   0.3  only the first few bytes fit; other protocols could start the same way
# detect() reports "proto.unknown" below MIN_CONFIDENCE.
MIN_CONFIDENCE = 0.3
FULL, STRONG, PARTIAL, WEAK = 1.0, 0.8, 0.5, 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Guess:
    protocol: str
    confidence: float
    encrypted: bool = False
    upgrade: str | None = None
    details: tuple[tuple[str, str], ...] = ()


# Guess built without its frozen __init__ (the HTTP probe answers for most flows); tests hold the
# two equal.
_build_guess = slot_constructor(Guess)


def new_guess(
    protocol: str,
    confidence: float,
    details: tuple[tuple[str, str], ...],
    *,
    encrypted: bool = False,
    upgrade: str | None = None,
) -> Guess:
    """``Guess(...)`` built without the frozen __init__."""
    return _build_guess(
        protocol=protocol,
        confidence=confidence,
        encrypted=encrypted,
        upgrade=upgrade,
        details=details,
    )


def printable(data: bytes) -> bool:
    return all(32 <= b < 127 for b in data)


def first_line(data: bytes, limit: int = 512) -> bytes | None:
    """The first CRLF- or LF-terminated line, or None when no end of line is in sight."""
    end = data.find(b"\n", 0, limit)
    if end < 0:
        return None
    return data[:end].rstrip(b"\r")


def starts_like(data: bytes, *openings: bytes) -> bool:
    """Whether ``data`` begins with one of ``openings``, or is the start of one (a detector's
    ``possible``: more bytes could still make it that opening)."""
    return any(o.startswith(data[: len(o)]) for o in openings)


def lines(data: bytes, limit: int = 4096) -> list[bytes]:
    return [ln.rstrip(b"\r") for ln in data[:limit].split(b"\n")]
