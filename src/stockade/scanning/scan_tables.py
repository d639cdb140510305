"""Tables of scan results (Alembic branch ``scans``): scanned images, inventories kept per manifest
digest (so a registry walk scans each digest once and a re-match after ``db import`` reads no
layers), and scan runs with their counts by severity. The findings of a run go to the core
``findings`` table under the run id."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from stockade.store.tables import metadata

scan_images = Table(
    "scan_images",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(500), nullable=False, unique=True),
    Column("registry", String(255)),
    Column("repository", String(400)),
    Column("tag", String(200)),
    Column("manifest_digest", String(100)),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_scanned", DateTime(timezone=True), nullable=False),
    Column("last_run_id", String(32)),
    Index("ix_scan_images_repo", "registry", "repository"),
)

scan_inventories = Table(
    "scan_inventories",
    metadata,
    Column("manifest_digest", String(100), primary_key=True),
    Column("source", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("packages", Integer, nullable=False),
    Column("catalogers", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("matched_at", DateTime(timezone=True)),
    Column("matched_db_built", DateTime(timezone=True)),
    # The kept match (stockade.scanning.match_cache): its key and its JSON.
    Column("match_key", Text),
    Column("match_result", Text),
)

scan_runs = Table(
    "scan_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("image_id", Integer, ForeignKey("scan_images.id", ondelete="SET NULL")),
    Column("manifest_digest", String(100)),
    Column("target", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("mode", String(16), nullable=False),  # "scan", "cached", "rematched"
    Column("read_layers", Integer, nullable=False),
    Column("db_built", DateTime(timezone=True)),
    Column("critical", Integer, nullable=False),
    Column("high", Integer, nullable=False),
    Column("medium", Integer, nullable=False),
    Column("low", Integer, nullable=False),
    Column("negligible", Integer, nullable=False),
    Column("unknown", Integer, nullable=False),
    Column("suppressed", Integer, nullable=False),
    Column("fail_on", String(16)),
    Column("failed", Boolean, nullable=False),
    Column("packages", Integer),  # packages identified (NULL: recorded before scans_0002)
    Column("unchecked", Text),  # JSON [{ecosystem, packages, reason}] not checked
    Index("ix_scan_runs_image", "image_id", "finished_at"),
    Index("ix_scan_runs_digest", "manifest_digest"),
)
