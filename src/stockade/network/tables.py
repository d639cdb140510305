"""The network pillar's table: one row per observed connection (the connection graph)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from stockade.store.tables import metadata

connections = Table(
    "network_connections",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("transport", String(8), nullable=False),
    Column("ip_version", Integer, nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("client_port", Integer, nullable=False),
    Column("server_ip", String(64), nullable=False),
    Column("server_port", Integer, nullable=False),
    Column("client_kind", String(40), nullable=False),
    Column("client_namespace", String(253)),
    Column("client_name", String(253), nullable=False),
    Column("server_kind", String(40), nullable=False),
    Column("server_namespace", String(253)),
    Column("server_name", String(253), nullable=False),
    Column("protocol", String(40), nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("tls_version", String(16)),
    Column("sni", Text),
    Column("bytes_to_server", BigInteger, nullable=False),
    Column("bytes_to_client", BigInteger, nullable=False),
    Column("packets_to_server", BigInteger, nullable=False),
    Column("packets_to_client", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("dlp_hits", Integer, nullable=False),
    Column("data", JSON),  # the full record (masked DLP evidence only)
    Index("ix_netconn_start", "start"),
    Index("ix_netconn_client", "client_namespace", "client_name"),
    Index("ix_netconn_server", "server_namespace", "server_name"),
)
