"""runtime: process profiles applied through the controller and those the agents learned

Revision ID: vpatch17_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "vpatch17_0001"
down_revision = "core_0001"
branch_labels = ("vpatch17",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_profiles",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "runtime_learned",
        sa.Column("agent", sa.String(253), primary_key=True),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runtime_learned")
    op.drop_table("runtime_profiles")
