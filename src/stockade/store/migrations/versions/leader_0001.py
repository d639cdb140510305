"""leader: the response follower's cursor, and the events' commit order on PostgreSQL

``controller_cursors`` keeps where the leader replica's follower of the events table stands. On
PostgreSQL, ``events`` gets ``tx`` (the inserting transaction's id, ``pg_current_xact_id()``) and
``seq`` (a sequence) by default on insert: ordering by (tx, seq) and reading only transactions
older than every running one (``pg_snapshot_xmin``) gives every event once, in a final order,
whichever replica stored it. Rows stored before this revision keep them NULL (never followed).

Revision ID: leader_0001
Revises: core_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "leader_0001"
down_revision = "core_0002"
branch_labels = ("leader",)
depends_on = None


def upgrade() -> None:
    cursors = op.create_table(
        "controller_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("tx", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("replica", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(cursors, [{"name": "response", "tx": 0, "seq": 0, "term": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE events_seq")
        # no default while adding: existing rows stay NULL instead of being rewritten as new
        op.execute("ALTER TABLE events ADD COLUMN tx bigint, ADD COLUMN seq bigint")
        op.execute(
            "ALTER TABLE events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint), "
            "ALTER COLUMN seq SET DEFAULT nextval('events_seq')"
        )
        op.execute("CREATE INDEX ix_events_tx_seq ON events (tx, seq)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_events_tx_seq")
        op.execute("ALTER TABLE events DROP COLUMN tx, DROP COLUMN seq")
        op.execute("DROP SEQUENCE events_seq")
    op.drop_table("controller_cursors")
