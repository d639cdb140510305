"""core: the event envelope's fields (category, level, namespace, action, mode, node, rule, count)

Also ``stored_at`` (when the store took the event; the live stream follows it) and indexes for the
events API's filters. Existing rows get their category, level and namespace filled in.
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None

_LEVELS = {"unknown": 0, "negligible": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("category", sa.String(80)))
        batch.add_column(sa.Column("level", sa.Integer))
        batch.add_column(sa.Column("namespace", sa.String(253)))
        batch.add_column(sa.Column("action", sa.String(40)))
        batch.add_column(sa.Column("mode", sa.String(16)))
        batch.add_column(sa.Column("node", sa.String(253)))
        batch.add_column(sa.Column("rule", sa.String(253)))
        batch.add_column(sa.Column("count", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("stored_at", sa.DateTime(timezone=True)))
    _backfill()
    op.create_index("ix_events_at_id", "events", ["at", "id"])
    op.create_index("ix_events_category_at", "events", ["category", "at"])
    op.create_index("ix_events_level_at", "events", ["level", "at"])
    op.create_index("ix_events_namespace_at", "events", ["namespace", "at"])
    op.create_index("ix_events_stored_at", "events", ["stored_at"])


def _backfill() -> None:
    conn = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id", sa.String),
        sa.column("kind", sa.String),
        sa.column("severity", sa.String),
        sa.column("resource", sa.JSON),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("category", sa.String),
        sa.column("level", sa.Integer),
        sa.column("namespace", sa.String),
        sa.column("stored_at", sa.DateTime(timezone=True)),
    )
    conn.execute(sa.update(events).values(stored_at=events.c.at))
    for (kind,) in conn.execute(sa.select(events.c.kind).distinct()).all():
        conn.execute(
            sa.update(events).where(events.c.kind == kind).values(category=kind.partition(".")[0])
        )
    for name, level in _LEVELS.items():
        conn.execute(sa.update(events).where(events.c.severity == name).values(level=level))
    rows = conn.execute(
        sa.select(events.c.id, events.c.resource).where(events.c.resource.is_not(None))
    ).all()
    updates = [
        {"pk": ident, "ns": res["namespace"]}
        for ident, res in rows
        if isinstance(res, dict) and res.get("namespace")
    ]
    if updates:
        conn.execute(
            sa.update(events)
            .where(events.c.id == sa.bindparam("pk"))
            .values(namespace=sa.bindparam("ns")),
            updates,
        )


def downgrade() -> None:
    for name in (
        "ix_events_stored_at",
        "ix_events_namespace_at",
        "ix_events_level_at",
        "ix_events_category_at",
        "ix_events_at_id",
    ):
        op.drop_index(name, table_name="events")
    with op.batch_alter_table("events") as batch:
        for column in (
            "stored_at",
            "count",
            "rule",
            "node",
            "mode",
            "action",
            "namespace",
            "level",
            "category",
        ):
            batch.drop_column(column)
