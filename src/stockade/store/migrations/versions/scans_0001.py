"""scans: scanned images, inventories per manifest digest, scan runs"""

import sqlalchemy as sa
from alembic import op

revision = "scans_0001"
down_revision = "core_0001"
branch_labels = ("scans",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scan_images",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(500), nullable=False, unique=True),
        sa.Column("registry", sa.String(255)),
        sa.Column("repository", sa.String(400)),
        sa.Column("tag", sa.String(200)),
        sa.Column("manifest_digest", sa.String(100)),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_scanned", TZ, nullable=False),
        sa.Column("last_run_id", sa.String(32)),
    )
    op.create_index("ix_scan_images_repo", "scan_images", ["registry", "repository"])
    op.create_table(
        "scan_inventories",
        sa.Column("manifest_digest", sa.String(100), primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("packages", sa.Integer, nullable=False),
        sa.Column("catalogers", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("matched_at", TZ),
        sa.Column("matched_db_built", TZ),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("scan_images.id", ondelete="SET NULL")),
        sa.Column("manifest_digest", sa.String(100)),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("read_layers", sa.Integer, nullable=False),
        sa.Column("db_built", TZ),
        *(
            sa.Column(name, sa.Integer, nullable=False)
            for name in ("critical", "high", "medium", "low", "negligible", "unknown")
        ),
        sa.Column("suppressed", sa.Integer, nullable=False),
        sa.Column("fail_on", sa.String(16)),
        sa.Column("failed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_scan_runs_image", "scan_runs", ["image_id", "finished_at"])
    op.create_index("ix_scan_runs_digest", "scan_runs", ["manifest_digest"])


def downgrade() -> None:
    op.drop_table("scan_runs")
    op.drop_table("scan_inventories")
    op.drop_table("scan_images")
