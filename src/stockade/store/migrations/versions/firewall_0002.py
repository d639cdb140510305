"""firewall: the version counters the agents follow (the quarantine set)

Revision ID: firewall_0002
Revises: firewall_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "firewall_0002"
down_revision = "firewall_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("config_versions")
