"""advisories: the ids a bundling advisory lists (DSA/DLA/USN ``upstream``)

Some development databases got this column from an earlier edit of advisories_0001; add it only
where it is missing.
"""

import sqlalchemy as sa
from alembic import op

revision = "advisories_0002"
down_revision = "advisories_0001"
branch_labels = None
depends_on = None


def _has_upstream() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("adv_vulnerabilities")
    return any(c["name"] == "upstream" for c in columns)


def upgrade() -> None:
    if _has_upstream():
        return
    with op.batch_alter_table("adv_vulnerabilities") as batch:
        batch.add_column(sa.Column("upstream", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("adv_vulnerabilities") as batch:
        batch.drop_column("upstream")
