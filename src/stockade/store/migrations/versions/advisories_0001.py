"""advisories: sources, vulnerability records, affected packages, build metadata"""

import sqlalchemy as sa
from alembic import op

revision = "advisories_0001"
down_revision = "core_0001"
branch_labels = ("advisories",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adv_sources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("problems", sa.Integer, nullable=False),
    )
    op.create_table(
        "adv_vulnerabilities",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "source_id",
            sa.Integer,
            sa.ForeignKey("adv_sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("vuln_id", sa.String(200), nullable=False),
        sa.Column("data_source", sa.String(40), nullable=False),
        sa.Column("aliases", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("severity", sa.String(40)),
        sa.Column("cvss_vector", sa.Text),
        sa.Column("cvss_score", sa.Float),
        sa.Column("cvss_extra", sa.Text),
        sa.Column("published", sa.String(40)),
        sa.Column("modified", sa.String(40)),
        sa.Column("refs", sa.Text, nullable=False),
    )
    op.create_index("ix_adv_vuln_source", "adv_vulnerabilities", ["source_id"])
    op.create_index("ix_adv_vuln_id", "adv_vulnerabilities", ["vuln_id"])
    op.create_table(
        "adv_affected",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "vuln_pk",
            sa.Integer,
            sa.ForeignKey("adv_vulnerabilities.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("ecosystem", sa.String(80), nullable=False),
        sa.Column("package", sa.String(300), nullable=False),
        sa.Column("ranges", sa.Text, nullable=False),
        sa.Column("versions", sa.Text, nullable=False),
        sa.Column("fix_state", sa.String(16), nullable=False),
        sa.Column("fixed_version", sa.Text),
        sa.Column("severity", sa.String(40)),
    )
    op.create_index("ix_adv_affected_key", "adv_affected", ["ecosystem", "package"])
    op.create_index("ix_adv_affected_source", "adv_affected", ["source_id"])
    op.create_table(
        "adv_meta",
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("adv_meta")
    op.drop_table("adv_affected")
    op.drop_table("adv_vulnerabilities")
    op.drop_table("adv_sources")
