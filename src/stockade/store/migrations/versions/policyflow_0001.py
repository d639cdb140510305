"""firewall: one sequence behind the configuration versions (quarantine, policies), seeded with
the newest version so agents' ``since`` numbers stay valid

Revision ID: policyflow_0001
Revises: firewall_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "policyflow_0001"
down_revision = "firewall_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO config_versions (name, version) "
            "SELECT 'all', COALESCE(MAX(version), 0) FROM config_versions"
        )
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM config_versions WHERE name = 'all'"))
