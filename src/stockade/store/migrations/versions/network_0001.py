"""network: connection records

The sensor's per-connection table (the connection graph).
"""

import sqlalchemy as sa
from alembic import op

revision = "network_0001"
down_revision = "core_0001"
branch_labels = ("network",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_connections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("ip_version", sa.Integer, nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("client_port", sa.Integer, nullable=False),
        sa.Column("server_ip", sa.String(64), nullable=False),
        sa.Column("server_port", sa.Integer, nullable=False),
        sa.Column("client_kind", sa.String(40), nullable=False),
        sa.Column("client_namespace", sa.String(253)),
        sa.Column("client_name", sa.String(253), nullable=False),
        sa.Column("server_kind", sa.String(40), nullable=False),
        sa.Column("server_namespace", sa.String(253)),
        sa.Column("server_name", sa.String(253), nullable=False),
        sa.Column("protocol", sa.String(40), nullable=False),
        sa.Column("encrypted", sa.Boolean, nullable=False),
        sa.Column("tls_version", sa.String(16)),
        sa.Column("sni", sa.Text),
        sa.Column("bytes_to_server", sa.BigInteger, nullable=False),
        sa.Column("bytes_to_client", sa.BigInteger, nullable=False),
        sa.Column("packets_to_server", sa.BigInteger, nullable=False),
        sa.Column("packets_to_client", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("dlp_hits", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON),
    )
    op.create_index("ix_netconn_start", "network_connections", ["start"])
    op.create_index("ix_netconn_client", "network_connections", ["client_namespace", "client_name"])
    op.create_index("ix_netconn_server", "network_connections", ["server_namespace", "server_name"])


def downgrade() -> None:
    op.drop_table("network_connections")
