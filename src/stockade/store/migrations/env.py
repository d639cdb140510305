"""Alembic environment: always run with a connection handed in by stockade.store.db.upgrade."""

from __future__ import annotations

from alembic import context

from stockade.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from the alembic CLI
    raise SystemExit("run migrations through `stockade db migrate` or stockade.store.open_store()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
