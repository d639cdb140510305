"""scans: what a run could not check (packages identified, unchecked ecosystems)

``packages`` is how many packages the run identified and ``unchecked`` a JSON list of
``{ecosystem, packages, reason}``; both stay NULL for runs recorded before this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "scans_0002"
down_revision = "scans_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_runs") as batch:
        batch.add_column(sa.Column("packages", sa.Integer))
        batch.add_column(sa.Column("unchecked", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("scan_runs") as batch:
        batch.drop_column("unchecked")
        batch.drop_column("packages")
