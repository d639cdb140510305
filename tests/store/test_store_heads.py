"""The Alembic-free head check used when opening a store agrees with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from stockade.store import db


def test_literal_heads_match_alembic() -> None:
    versions = Path(db.__file__).parent / "migrations" / "versions"
    alembic_heads = frozenset(ScriptDirectory.from_config(db._alembic_config(None)).get_heads())
    assert db._literal_heads(versions) == alembic_heads


def _rev(d: Path, name: str, down: str) -> None:
    (d / f"{name}.py").write_text(f'revision = "{name}"\ndown_revision = {down}\n')


def test_literal_heads_branches_merges_and_fallback(tmp_path: Path) -> None:
    _rev(tmp_path, "core_0001", "None")
    _rev(tmp_path, "a_0001", '"core_0001"')
    _rev(tmp_path, "b_0001", '"core_0001"')
    assert db._literal_heads(tmp_path) == {"a_0001", "b_0001"}
    _rev(tmp_path, "merge_0001", '("a_0001", "b_0001")')
    assert db._literal_heads(tmp_path) == {"merge_0001"}
    (tmp_path / "odd_0001.py").write_text('revision = compute()\ndown_revision = "merge_0001"\n')
    assert db._literal_heads(tmp_path) is None  # not plain literals: Alembic decides


def test_database_from_a_newer_stockade_is_a_store_error(tmp_path: Path) -> None:
    import pytest
    from sqlalchemy import text

    from stockade.model.errors import StoreError
    from stockade.store import open_store

    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'future_0001'"))
    store.close()
    with pytest.raises(StoreError, match="future_0001"):
        open_store(url)
