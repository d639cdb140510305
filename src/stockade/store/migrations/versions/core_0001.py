"""core: events and findings

Every pillar's first revision has ``down_revision = "core_0001"`` and its own branch label.
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("resource", sa.JSON),
        sa.Column("peer", sa.JSON),
        sa.Column("data", sa.JSON),
    )
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "findings",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finding_id", sa.String(200), nullable=False),
        sa.Column("pillar", sa.String(20), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resource_kind", sa.String(40), nullable=False),
        sa.Column("resource_name", sa.Text, nullable=False),
        sa.Column("resource", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON),
        sa.Column("compliance", sa.JSON),
    )
    op.create_index("ix_findings_run", "findings", ["run_id"])
    op.create_index("ix_findings_pillar_at", "findings", ["pillar", "at"])


def downgrade() -> None:
    op.drop_table("findings")
    op.drop_table("events")
