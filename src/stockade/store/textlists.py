"""Comma-separated lists kept in a text column (the connection graph's ports, protocols and
per-sensor counts), read and merged here: by the graph in Python, and by SQLite in an upsert
through the functions :func:`register` gives a connection (PostgreSQL merges them in SQL)."""

from __future__ import annotations

from typing import Any


def listed(text: str) -> set[str]:
    """The items of ``text`` (``"a,b"``)."""
    return {item for item in text.split(",") if item}


def counts(text: str) -> dict[str, int]:
    """The ``name=n`` items of ``text`` summed by name (the name up to the last ``=``)."""
    out: dict[str, int] = {}
    for item in text.split(","):
        name, _, n = item.rpartition("=")
        if name and n.isdigit():
            out[name] = out.get(name, 0) + int(n)
    return out


def merged_list(old: str, new: str, limit: int) -> str:
    """The sorted union of the lists ``old`` and ``new``, its first ``limit`` items."""
    return ",".join(sorted(listed(old) | listed(new))[:limit])


def summed_counts(old: str, new: str) -> str:
    """The counts of ``old`` and ``new`` added by name, sorted by name."""
    if "," not in old and "," not in new:  # one name on each side (most merges)
        name, _, before = old.rpartition("=")
        added, _, more = new.rpartition("=")
        if name and name == added and before.isdigit() and more.isdigit():
            return f"{name}={int(before) + int(more)}"
    total = counts(new)
    for name, n in counts(old).items():
        total[name] = total.get(name, 0) + n
    return ",".join(f"{k}={v}" for k, v in sorted(total.items()))


def register(dbapi_conn: Any) -> None:
    """:func:`merged_list` and :func:`summed_counts` as SQL functions of a sqlite3 connection
    (``stockade_merged_list(old, new, limit)``, ``stockade_summed_counts(old, new)``)."""
    dbapi_conn.create_function("stockade_merged_list", 3, merged_list, deterministic=True)
    dbapi_conn.create_function("stockade_summed_counts", 2, summed_counts, deterministic=True)
