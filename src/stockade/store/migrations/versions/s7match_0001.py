"""advisories: the ranges of every affected row as intervals of byte sort keys (``adv_spans``)

The matcher lets the database compare installed versions with these bounds. Stores imported
before this revision get their spans at their first match after it: the span computation is the
importer's (``stockade.scanning.advisories.spans``, above the store layer), so this revision only
leaves the marker ``spans = pending`` in ``adv_meta`` when there are records
(``stockade.scanning.advisories.store.ensure_spans`` fills them and removes it).
"""

import sqlalchemy as sa
from alembic import op

revision = "s7match_0001"
down_revision = "advisories_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adv_spans",
        sa.Column(
            "affected_pk",
            sa.Integer,
            sa.ForeignKey("adv_affected.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("ecosystem", sa.String(80), nullable=False),
        sa.Column("package", sa.String(300), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("lo", sa.LargeBinary),
        sa.Column("lo_in", sa.Boolean, nullable=False),
        sa.Column("hi", sa.LargeBinary),
        sa.Column("hi_in", sa.Boolean, nullable=False),
        sa.Column("exact", sa.Text),
        sa.Column("fix", sa.Text),
    )
    op.create_index("ix_adv_spans_key", "adv_spans", ["ecosystem", "package"])
    op.create_index("ix_adv_spans_source", "adv_spans", ["source_id"])
    op.execute(
        "INSERT INTO adv_meta (key, value) SELECT 'spans', 'pending'"
        " WHERE EXISTS (SELECT 1 FROM adv_affected)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM adv_meta WHERE key = 'spans'")
    op.drop_index("ix_adv_spans_source", table_name="adv_spans")
    op.drop_index("ix_adv_spans_key", table_name="adv_spans")
    op.drop_table("adv_spans")
