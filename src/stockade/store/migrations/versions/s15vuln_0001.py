"""advisories: derived data of records stored by older trees, refreshed at the first match

Two changes of the importer's reading leave stored rows stale until their source is imported
again: apk versions with a leading-zero component compare as decimal fractions (``4.09 < 4.5``),
which changes the stored order of events and the span keys of apk rows; and CVSS v4.0 vectors are
scored (they were kept unscored, so a v4-only record had no score and its severity was unknown).
As for ``s7match_0001``, the computation is the importer's, above the store layer: this revision
only leaves markers in ``adv_meta`` (``spans = apk``, unless a full ``spans = pending`` is there;
``cvss = pending``) when there are such rows, and
``stockade.scanning.advisories.store.ensure_spans`` does the work and removes them.
"""

from alembic import op

revision = "s15vuln_0001"
down_revision = "s7match_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO adv_meta (key, value) SELECT 'spans', 'apk'"
        " WHERE EXISTS (SELECT 1 FROM adv_affected WHERE ecosystem LIKE 'alpine:%'"
        " OR ecosystem IN ('wolfi', 'chainguard'))"
        " AND NOT EXISTS (SELECT 1 FROM adv_meta WHERE key = 'spans')"
    )
    op.execute(
        "INSERT INTO adv_meta (key, value) SELECT 'cvss', 'pending'"
        " WHERE EXISTS (SELECT 1 FROM adv_vulnerabilities WHERE cvss_score IS NULL"
        " AND cvss_extra LIKE '%CVSS:4.0/%')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM adv_meta WHERE key = 'cvss' OR (key = 'spans' AND value = 'apk')")
