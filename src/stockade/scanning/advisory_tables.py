"""Tables of the advisory store (Alembic branch ``advisories``).

``adv_vulnerabilities`` holds one row per imported record, ``adv_affected`` one row per
(ecosystem, package) it affects, indexed for the matcher's bulk lookups. Ranges and version lists
are stored as JSON text so the matcher decodes them itself in one pass. ``adv_spans`` holds each
affected row's ranges as intervals of byte sort keys (``scanning.advisories.spans``), so the
database picks the rows an installed version falls in.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from stockade.store.tables import metadata

adv_sources = Table(
    "adv_sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("records", Integer, nullable=False),
    Column("problems", Integer, nullable=False),
    # Why an earlier release's import of this source must be imported again (see
    # ``advisories.store.flag_reimports``); NULL when it needs not.
    Column("reimport", Text),
)

adv_vulnerabilities = Table(
    "adv_vulnerabilities",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=False),
    Column("source_id", Integer, ForeignKey("adv_sources.id", ondelete="CASCADE"), nullable=False),
    Column("vuln_id", String(200), nullable=False),
    Column("data_source", String(40), nullable=False),
    Column("aliases", Text, nullable=False),  # JSON list
    Column("upstream", Text, nullable=False, server_default="[]"),  # JSON: ids a DSA/USN bundles
    Column("summary", Text, nullable=False),
    Column("severity", String(40)),
    Column("cvss_vector", Text),
    Column("cvss_score", Float),
    Column("cvss_extra", Text),  # JSON list of other vectors [{version, vector, score}]
    Column("published", String(40)),
    Column("modified", String(40)),
    Column("refs", Text, nullable=False),  # JSON list
    Index("ix_adv_vuln_source", "source_id"),
    Index("ix_adv_vuln_id", "vuln_id"),
)

adv_affected = Table(
    "adv_affected",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=False),
    Column(
        "vuln_pk", Integer, ForeignKey("adv_vulnerabilities.pk", ondelete="CASCADE"), nullable=False
    ),
    Column("source_id", Integer, nullable=False),
    Column("ecosystem", String(80), nullable=False),
    Column("package", String(300), nullable=False),
    Column("ranges", Text, nullable=False),  # JSON [[type, [[kind, version], ...]], ...]
    Column("versions", Text, nullable=False),  # JSON list
    Column("fix_state", String(16), nullable=False),
    Column("fixed_version", Text),
    Column("severity", String(40)),
    Index("ix_adv_affected_key", "ecosystem", "package"),
    Index("ix_adv_affected_source", "source_id"),
)

adv_spans = Table(
    "adv_spans",
    metadata,
    Column(
        "affected_pk",
        Integer,
        ForeignKey("adv_affected.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("source_id", Integer, nullable=False),
    Column("ecosystem", String(80), nullable=False),
    Column("package", String(300), nullable=False),
    Column("seq", Integer, nullable=False),  # the range's position; -1: evaluate in Python
    Column("lo", LargeBinary),  # lower bound key (NULL: unbounded)
    Column("lo_in", Boolean, nullable=False),
    Column("hi", LargeBinary),  # upper bound key (NULL: unbounded)
    Column("hi_in", Boolean, nullable=False),
    Column("exact", Text),  # a version of the explicit list (matched by text)
    Column("fix", Text),
    Index("ix_adv_spans_key", "ecosystem", "package"),
    Index("ix_adv_spans_source", "source_id"),
)

adv_meta = Table(
    "adv_meta",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)
