"""advisories: sources an earlier release imported in a way the store cannot repair are marked

Two readings changed in ways that stored rows cannot be brought up to date from what is stored:

- events at one version keep the document's order since session 16 (``fixed 1.5, introduced
  1.5`` leaves 1.5 affected); earlier releases stored ``introduced`` first at a tie, and both
  document orders were stored alike, so the order to restore is not in the store;
- the three Ubuntu FIPS streams' entries are stored under their stream since session 17
  (``fips-updates/openssl``); session 16 stored them under the bare name, and which stream an
  entry came from (the certified and preview streams are stored alike) is not in the store.

Such a source must be imported again. This revision adds ``adv_sources.reimport`` (why, or
NULL) and leaves the marker ``reimport = pending`` when there are records;
``stockade.scanning.advisories.store.ensure_spans`` (the reading is the importer's, above the
store layer) finds the sources and removes the marker. An import of a source writes its row
anew, without a reason.
"""

import sqlalchemy as sa
from alembic import op

revision = "s17vuln_0001"
down_revision = "s16vuln_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("adv_sources") as batch:
        batch.add_column(sa.Column("reimport", sa.Text, nullable=True))
    op.execute(
        "INSERT INTO adv_meta (key, value) SELECT 'reimport', 'pending'"
        " WHERE EXISTS (SELECT 1 FROM adv_affected)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM adv_meta WHERE key = 'reimport'")
    with op.batch_alter_table("adv_sources") as batch:
        batch.drop_column("reimport")
