"""One way to write a length of time and a point in time on every command line.

``30s``, ``5m``, ``12h``, ``7d``, ``2w`` (decimals allowed). A bare number is refused: ``--every 5``
read as seconds and ``--max-db-age 5`` read as days used to mean different things, so the unit is
always written out. A point in time (``--since``) is a duration back from now or an ISO 8601 date.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from stockade.model.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])\Z")


def parse_duration(text: str, *, allow_zero: bool = True) -> timedelta:
    """``30s``, ``5m``, ``12h``, ``7d``, ``2w`` -> a timedelta; anything else is a UsageError."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise UsageError(f"bad duration {text!r} (write a number and a unit: 30s, 5m, 12h, 7d, 2w)")
    value = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    if not allow_zero and value <= timedelta(0):
        raise UsageError(f"the duration {text!r} must be more than 0")
    return value


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: a duration back from now (``24h``) or an ISO 8601 date or date-time
    (``2026-12-01``, ``2026-12-01T08:00:00+01:00``; a time without a zone is UTC)."""
    t = text.strip()
    if _DURATION.match(t.lower()):
        return (now or datetime.now(UTC)) - parse_duration(t)
    try:
        at = datetime.fromisoformat(t)
    except ValueError:
        raise UsageError(
            f"bad time {text!r} (a duration such as 24h or 7d, or a date such as 2026-12-01)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def human(delta: timedelta) -> str:
    """``36 hours``, ``2.5 days``: for messages."""
    hours = delta.total_seconds() / 3600
    if hours < 1:
        return f"{delta.total_seconds() / 60:.0f} minutes"
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.1f} days"
