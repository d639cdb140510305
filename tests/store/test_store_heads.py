"""Opening a store: the fast head check agrees with Alembic, and a database migrated by a newer
Stockade is a one-line StoreError."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from stockade.model.errors import StoreError
from stockade.store import db, open_store


def test_script_heads_match_alembic() -> None:
    alembic_heads = frozenset(ScriptDirectory.from_config(db._alembic_config(None)).get_heads())
    assert db._script_heads() == alembic_heads


def test_database_from_a_newer_stockade_is_a_store_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version VALUES ('future_0001')"))
    store.close()
    with pytest.raises(StoreError, match="future_0001"):
        open_store(url)
