"""network: the connection graph's aggregate (edges by hour and encryption) and its nodes

Revision ID: graph_0001
Revises: network_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "graph_0001"
down_revision = "network_0001"
branch_labels = ("graph",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_graph_edges",
        sa.Column("key", sa.String(1100), primary_key=True),
        sa.Column("src", sa.String(520), nullable=False),
        sa.Column("dst", sa.String(520), nullable=False),
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("encryption", sa.String(8), nullable=False),
        sa.Column("connections", sa.Integer, nullable=False),
        sa.Column("violations", sa.Integer, nullable=False),
        sa.Column("blocked", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("ports", sa.Text, nullable=False),
        sa.Column("protocols", sa.Text, nullable=False),
        sa.Column("dlp", sa.Text, nullable=False),
        sa.Column("first_seen", sa.String(40), nullable=False),
        sa.Column("last_seen", sa.String(40), nullable=False),
    )
    op.create_index("ix_graph_edges_hour", "network_graph_edges", ["hour"])
    op.create_index("ix_graph_edges_src", "network_graph_edges", ["src"])
    op.create_index("ix_graph_edges_dst", "network_graph_edges", ["dst"])
    op.create_table(
        "network_graph_nodes",
        sa.Column("id", sa.String(520), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("namespace", sa.String(253)),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("network_graph_nodes")
    op.drop_table("network_graph_edges")
