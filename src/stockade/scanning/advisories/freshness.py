"""Is the advisory data good enough to answer "is this image vulnerable"?

A missing or empty store, or one built longer ago than the allowed age, raises StaleDataError:
a scanner must never report "no vulnerabilities" when it lacks the data to know.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stockade.model.duration import human
from stockade.model.errors import StaleDataError
from stockade.scanning.advisories.store import DbInfo, db_info
from stockade.store.db import Store

DEFAULT_MAX_AGE = timedelta(days=7)


def check_freshness(
    store: Store,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    allow_stale: bool = False,
    now: datetime | None = None,
) -> DbInfo:
    """The store's status; raises StaleDataError when it is empty or too old (unless allowed)."""
    info = db_info(store)
    if allow_stale:
        return info
    if info.built_at is None or info.records == 0:
        raise StaleDataError(
            "the advisory database is empty: run `stockade db import SRC` or `stockade db update` "
            "first (or pass --allow-stale-db to scan without vulnerability data)",
            subject=store.safe_url,
        )
    age = (now or datetime.now(UTC)) - info.built_at
    if age > max_age:
        raise StaleDataError(
            f"the advisory database was built {human(age)} ago, more than the allowed "
            f"{human(max_age)}: run `stockade db update` "
            "(or raise --max-db-age, or pass --allow-stale-db)",
            subject=store.safe_url,
        )
    return info
