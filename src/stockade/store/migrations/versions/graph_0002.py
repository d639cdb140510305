"""network: a version of the connection graph's aggregate, raised by every merge (answer caches)

Revision ID: graph_0002
Revises: graph_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "graph_0002"
down_revision = "graph_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "network_graph_meta",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"name": "edges", "version": 0}])


def downgrade() -> None:
    op.drop_table("network_graph_meta")
