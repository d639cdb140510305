"""scans: the kept match of an inventory, reused by a warm re-scan

``match_key`` names what the kept match is valid for (advisory data generation, tool version,
format; see ``stockade.scanning.match_cache``) and ``match_result`` holds it as JSON; both stay
NULL until the inventory's next scan.
"""

import sqlalchemy as sa
from alembic import op

revision = "s6rescan_0001"
down_revision = "scans_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_inventories") as batch:
        batch.add_column(sa.Column("match_key", sa.Text))
        batch.add_column(sa.Column("match_result", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("scan_inventories") as batch:
        batch.drop_column("match_result")
        batch.drop_column("match_key")
