"""network: each graph aggregate row stamped with the version of the merge that last wrote it

Revision ID: graph14_0001
Revises: rules14_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "graph14_0001"
down_revision = "rules14_0002"
branch_labels = ("graph14",)
depends_on = None


def upgrade() -> None:
    for table, index in (
        ("network_graph_edges", "ix_graph_edges_version"),
        ("network_graph_nodes", "ix_graph_nodes_version"),
    ):
        op.add_column(
            table, sa.Column("version", sa.BigInteger, nullable=False, server_default="0")
        )
        op.create_index(index, table, ["version"])


def downgrade() -> None:
    for table, index in (
        ("network_graph_edges", "ix_graph_edges_version"),
        ("network_graph_nodes", "ix_graph_nodes_version"),
    ):
        op.drop_index(index, table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
