"""api: scan and CIS results uploaded by agents (branch inventory)"""

import sqlalchemy as sa
from alembic import op

revision = "inventory_0001"
down_revision = "api_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_results",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(100)),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(80), nullable=False),
        sa.Column("findings", sa.Integer, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_index("ix_api_results_kind", "api_results", ["kind", "received_at"])
    op.create_index("ix_api_results_digest", "api_results", ["digest"])


def downgrade() -> None:
    op.drop_table("api_results")
