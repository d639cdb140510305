"""Core tables: events and findings. Pillars declare their own tables in their own modules
against the same ``metadata`` and add an Alembic branch for them."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(80), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("source", String(80), nullable=False),
    Column("message", Text, nullable=False),
    Column("resource", JSON),
    Column("peer", JSON),
    Column("data", JSON),
    # core_0002: the envelope's fields, and the keys the events API filters on
    Column("category", String(80)),
    Column("level", Integer),  # the severity as a number, for "level >= N"
    Column("namespace", String(253)),  # the resource's namespace
    Column("action", String(40)),
    Column("mode", String(16)),
    Column("node", String(253)),
    Column("rule", String(253)),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("stored_at", DateTime(timezone=True)),  # when this store took it (live stream order)
    # core_0003: every filter of the events API read in its (at, id) keyset order
    Index("ix_events_at_id", "at", "id"),
    Index("ix_events_kind_at_id", "kind", "at", "id"),
    Index("ix_events_category_at_id", "category", "at", "id"),
    Index("ix_events_level_at_id", "level", "at", "id"),
    Index("ix_events_namespace_at_id", "namespace", "at", "id"),
    Index("ix_events_category_level_at_id", "category", "level", "at", "id"),
    Index("ix_events_namespace_level_at_id", "namespace", "level", "at", "id"),
    Index("ix_events_stored_at", "stored_at"),
)

findings = Table(
    "findings",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("finding_id", String(200), nullable=False),
    Column("pillar", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("resource_kind", String(40), nullable=False),
    Column("resource_name", Text, nullable=False),
    Column("resource", JSON, nullable=False),
    Column("details", JSON),
    Column("compliance", JSON),
    Index("ix_findings_run", "run_id"),
    Index("ix_findings_pillar_at", "pillar", "at"),
)
