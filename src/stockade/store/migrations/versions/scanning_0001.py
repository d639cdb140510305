"""scanning: per-layer catalog cache

Revision of the ``scanning`` branch (image reader): one row per layer diff id and cataloger set.
"""

import sqlalchemy as sa
from alembic import op

revision = "scanning_0001"
down_revision = "core_0001"
branch_labels = ("scanning",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_layer_cache",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("diff_id", sa.String(80), nullable=False),
        sa.Column("catalogers", sa.String(1000), nullable=False),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_scan_layer_cache_diff_id", "scan_layer_cache", ["diff_id"])


def downgrade() -> None:
    op.drop_index("ix_scan_layer_cache_diff_id", table_name="scan_layer_cache")
    op.drop_table("scan_layer_cache")
