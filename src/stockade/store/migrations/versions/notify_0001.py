"""notify: dead letters

Notifications that no retry delivered, kept to be listed and redelivered.

Revision ID: notify_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "notify_0001"
down_revision = "core_0001"
branch_labels = ("notify",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_dead_letters",
        sa.Column("delivery_id", sa.String(32), primary_key=True),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("target_kind", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("event_kind", sa.String(80), nullable=False),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notify_dead_letters_failed", "notify_dead_letters", ["first_failed_at"])


def downgrade() -> None:
    op.drop_table("notify_dead_letters")
