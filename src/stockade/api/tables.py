"""The controller's tables: users, API tokens, sessions and agents (Alembic branch ``api``), and
packet capture requests with their masked pcap (branch ``captures``).

Secrets are never stored: passwords as argon2 hashes, tokens and session ids as SHA-256 digests.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
)

from stockade.store.tables import metadata

users = Table(
    "api_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

sessions = Table(
    "api_sessions",
    metadata,
    Column("secret_sha256", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_api_sessions_expires", "expires_at"),
)

agents = Table(
    "api_agents",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("node", String(253), nullable=False),
    Column("version", String(64), nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("token_name", String(64), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("accepted", BigInteger, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
)

# A capture request and, once an agent uploaded it, the pcap: masked by the agent and masked again
# by the controller in memory before this row holds it (in the database, so every replica serves it).
captures = Table(
    "api_captures",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workload", String(507), nullable=False),
    Column("duration", Float, nullable=False),
    Column("max_bytes", BigInteger, nullable=False),
    Column("filter", Text),
    Column("state", String(16), nullable=False),  # requested, running, done, failed
    Column("requested_by", String(80), nullable=False),
    Column("reason", String(1000), nullable=False),
    Column("agent", String(253)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("packets", BigInteger, nullable=False),
    Column("masked", BigInteger, nullable=False),
    Column("report", JSON, nullable=False),
    Column("error", String(1000)),
    Column("pcap", LargeBinary),
    Index("ix_api_captures_state", "state"),
)
