"""One duration parser for every command line option that takes a length or a point in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stockade.model.duration import parse_duration, parse_since
from stockade.model.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_units(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["5", "soon", "", "-5m", "5 days", "1e3s"])
def test_bare_numbers_and_junk_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_zero_only_where_allowed() -> None:
    assert parse_duration("0m") == timedelta(0)
    with pytest.raises(UsageError, match="more than 0"):
        parse_duration("0s", allow_zero=False)


def test_since_takes_a_duration_or_a_date() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert parse_since("24h", now=now) == datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_since("2026-12-01", now=now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(UsageError, match="bad time"):
        parse_since("yesterday")
