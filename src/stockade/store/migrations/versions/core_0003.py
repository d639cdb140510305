"""core: indexes that serve each events API filter in its (at, id) keyset order

Each filter the API takes (category, namespace, kind, level "at least", and category or namespace
with a level) gets an index whose columns are the equalities first and then ``at, id``, so a page
is one index range read newest first, whatever the page's cursor; a minimum level is read as one
such range per level value, merged (``stockade.store.records.events_page``). ``(at)`` alone is
dropped: ``(at, id)`` serves it.
"""

from alembic import op

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None

_REPLACED = {  # index of core_0001/core_0002 -> its successor with id last
    "ix_events_kind_at": ("ix_events_kind_at_id", ["kind", "at", "id"]),
    "ix_events_category_at": ("ix_events_category_at_id", ["category", "at", "id"]),
    "ix_events_level_at": ("ix_events_level_at_id", ["level", "at", "id"]),
    "ix_events_namespace_at": ("ix_events_namespace_at_id", ["namespace", "at", "id"]),
}
_NEW = {
    "ix_events_category_level_at_id": ["category", "level", "at", "id"],
    "ix_events_namespace_level_at_id": ["namespace", "level", "at", "id"],
}
_OLD_COLUMNS = {
    "ix_events_kind_at": ["kind", "at"],
    "ix_events_category_at": ["category", "at"],
    "ix_events_level_at": ["level", "at"],
    "ix_events_namespace_at": ["namespace", "at"],
}


def upgrade() -> None:
    for old, (new, columns) in _REPLACED.items():
        op.drop_index(old, table_name="events")
        op.create_index(new, "events", columns)
    for name, columns in _NEW.items():
        op.create_index(name, "events", columns)
    op.drop_index("ix_events_at", table_name="events")
    # The planners' statistics must know the new indexes: with statistics for some indexes only,
    # SQLite may take one it knows nothing of for a cheap one and sort a whole category.
    op.execute("ANALYZE events")


def downgrade() -> None:
    op.create_index("ix_events_at", "events", ["at"])
    for name in _NEW:
        op.drop_index(name, table_name="events")
    for old, (new, _) in _REPLACED.items():
        op.drop_index(new, table_name="events")
        op.create_index(old, "events", _OLD_COLUMNS[old])
