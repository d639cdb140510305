"""captures: packet capture requests and their masked pcaps

Revision ID: captures_0001
Revises: api_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "captures_0001"
down_revision = "api_0001"
branch_labels = ("captures",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_captures",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workload", sa.String(507), nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("max_bytes", sa.BigInteger, nullable=False),
        sa.Column("filter", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("agent", sa.String(253)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("packets", sa.BigInteger, nullable=False),
        sa.Column("masked", sa.BigInteger, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("error", sa.String(1000)),
        sa.Column("pcap", sa.LargeBinary),
    )
    op.create_index("ix_api_captures_state", "api_captures", ["state"])


def downgrade() -> None:
    op.drop_table("api_captures")
