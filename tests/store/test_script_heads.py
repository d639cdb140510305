"""The fast migration-heads reader agrees with Alembic's own view of the scripts."""

from __future__ import annotations

from stockade.store import db


def test_fast_heads_equal_alembic_heads() -> None:
    db._script_heads.cache_clear()
    fast = db._script_heads()
    assert fast == db._alembic_heads()
    assert "core_0001" not in fast  # every pillar branch chains from it
    assert "scanning_0001" in fast
