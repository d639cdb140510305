"""Severity levels, ordered, with one parser for the spellings found in the wild."""

from __future__ import annotations

from enum import IntEnum

from stockade.model.errors import UsageError


class Severity(IntEnum):
    UNKNOWN = 0
    NEGLIGIBLE = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a severity name as scanners and distributions spell it (case-insensitive)."""
        key = text.strip().upper()
        key = _ALIASES.get(key, key)
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise UsageError(f"unknown severity {text!r} (expected one of: {names})") from None

    @classmethod
    def from_cvss(cls, score: float, *, v2: bool = False) -> Severity:
        """Map a CVSS v3/v4 base score to its qualitative rating; a v2 score (``v2``) to NVD's
        v2 rating, which has no critical band (7.0-10.0 is high, below 4.0 low)."""
        if v2:
            return cls.HIGH if score >= 7.0 else cls.MEDIUM if score >= 4.0 else cls.LOW
        if score >= 9.0:
            return cls.CRITICAL
        if score >= 7.0:
            return cls.HIGH
        if score >= 4.0:
            return cls.MEDIUM
        if score > 0.0:
            return cls.LOW
        return cls.NEGLIGIBLE

    def __str__(self) -> str:
        return self.name.lower()


_ALIASES = {
    "MODERATE": "MEDIUM",
    "IMPORTANT": "HIGH",
    "UNIMPORTANT": "NEGLIGIBLE",
    "NONE": "NEGLIGIBLE",
    "INFO": "NEGLIGIBLE",
    "NOT YET ASSIGNED": "UNKNOWN",
    "UNASSIGNED": "UNKNOWN",
    "": "UNKNOWN",
}
