"""advisories: rows with OSV ``limit`` events get their spans again at the first match

A ``limit`` event was read as a fix without a version: the walk stopped there, so a range with
several limits (or a limit before a later ``introduced``) missed what lies below its highest
limit. The schema's reading (a range applies below one of its limits, ``*`` being infinity)
changes the spans of such rows, and limits are now stored after the range's other events. As
for ``s15vuln_0001``, this revision only leaves a marker (``limits = pending``) when there are
such rows; ``stockade.scanning.advisories.store.ensure_spans`` does the work and removes it.
Events at one version were stored ``introduced`` first; now in the document's order: that
order is not in the store, so it changes only when the source is imported again.
"""

from alembic import op

revision = "s16vuln_0001"
down_revision = "s15vuln_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO adv_meta (key, value) SELECT 'limits', 'pending'"
        " WHERE EXISTS (SELECT 1 FROM adv_affected WHERE ranges LIKE '%\"limit\"%')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM adv_meta WHERE key = 'limits'")
