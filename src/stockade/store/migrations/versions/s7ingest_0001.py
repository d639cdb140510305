"""core: two indexes of ``events`` fewer (each stored event updated ten btrees on PostgreSQL)

A category or a namespace without a level is read from the (category, level, at, id) and
(namespace, level, at, id) indexes, one range per level value merged in (at, id) order, as a
minimum level already was (``stockade.store.records._page_query``): core_0003's
(category, at, id) and (namespace, at, id) served nothing else.
"""

from alembic import op

revision = "s7ingest_0001"
down_revision = "core_0003"
branch_labels = None
depends_on = None

_DROPPED = {
    "ix_events_category_at_id": ["category", "at", "id"],
    "ix_events_namespace_at_id": ["namespace", "at", "id"],
}


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="events")


def downgrade() -> None:
    for name, columns in _DROPPED.items():
        op.create_index(name, "events", columns)
    op.execute("ANALYZE events")
