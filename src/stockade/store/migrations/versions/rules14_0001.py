"""responses: the response rules and notification targets in force, shared by every replica

Revision ID: rules14_0001
Revises: api_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "rules14_0001"
down_revision = "api_0001"
branch_labels = ("responses",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "response_documents",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("response_documents")
