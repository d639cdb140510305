"""Tables of the scanning pillar's image reader (Alembic branch ``scanning``)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, LargeBinary, String, Table

from stockade.store.tables import metadata

# One row per (layer diff id, cataloger set): the layer's path index, whiteouts, opaque dirs and
# the packages the catalogers found in it, as zlib-compressed JSON (see scanning.layercache).
layer_cache = Table(
    "scan_layer_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("diff_id", String(80), nullable=False, index=True),
    Column("catalogers", String(1000), nullable=False),
    Column("format", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
