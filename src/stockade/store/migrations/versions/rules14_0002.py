"""network: who first reported each DLP finding of a connection (the graph counts it once)

Revision ID: rules14_0002
Revises: graph_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "rules14_0002"
down_revision = "graph_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_graph_dlp_flows",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("sensor", sa.String(80), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("reporter", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_network_graph_dlp_flows_key",
        "network_graph_dlp_flows",
        ["flow", "sensor", "direction", "at"],
    )


def downgrade() -> None:
    op.drop_table("network_graph_dlp_flows")
