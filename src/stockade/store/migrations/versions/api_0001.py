"""api: the controller's users, API tokens, sessions and agents"""

import sqlalchemy as sa
from alembic import op

revision = "api_0001"
down_revision = "core_0001"
branch_labels = ("api",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "api_sessions",
        sa.Column("secret_sha256", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_api_sessions_expires", "api_sessions", ["expires_at"])
    op.create_table(
        "api_agents",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("capabilities", sa.JSON, nullable=False),
        sa.Column("token_name", sa.String(64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_agents")
    op.drop_table("api_sessions")
    op.drop_table("api_tokens")
    op.drop_table("api_users")
