"""The project store: one database (SQLite by default, PostgreSQL by URL) for every pillar.

Schema changes go through Alembic. Each pillar owns one Alembic *branch* (its own revision files
under ``migrations/versions`` with ``branch_labels``) whose root depends on the core revision, so
pillars never edit each other's migrations; ``upgrade heads`` applies them all.
"""

from typing import Any

from stockade.store.db import Store, default_url, open_store

__all__ = ["Store", "default_url", "metadata", "open_store"]


def __getattr__(name: str) -> Any:
    # ``metadata`` imports SQLAlchemy; loaded on first use so opening an up-to-date SQLite store
    # (see stockade.store.db) stays free of it.
    if name == "metadata":
        from stockade.store.tables import metadata

        return metadata
    raise AttributeError(name)
