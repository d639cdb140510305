"""admission: the stored admission policy

Revision ID: admission_0001
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "admission_0001"
down_revision = "core_0001"
branch_labels = ("admission",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admission_policies",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admission_policies")
