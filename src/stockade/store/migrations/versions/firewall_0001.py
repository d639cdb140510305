"""firewall: applied policy, learned connections, quarantine

Revision ID: firewall_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "firewall_0001"
down_revision = "core_0001"
branch_labels = ("firewall",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firewall_policies",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "firewall_learned",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("src", sa.String(400), nullable=False),
        sa.Column("dst", sa.String(400), nullable=False),
        sa.Column("src_endpoint", sa.JSON, nullable=False),
        sa.Column("dst_endpoint", sa.JSON, nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("l4", sa.String(8), nullable=False),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("src", "dst", "port", "l4", "app", name="uq_firewall_learned"),
    )
    op.create_table(
        "firewall_quarantine",
        sa.Column("workload", sa.String(400), primary_key=True),
        sa.Column("addresses", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("firewall_quarantine")
    op.drop_table("firewall_learned")
    op.drop_table("firewall_policies")
