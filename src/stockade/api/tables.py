"""The controller's tables: users, API tokens, sessions, agents and the scan and CIS results agents
upload (Alembic branch ``api``), the leader's cursors (branch ``leader``), and packet capture
requests with their masked pcap (branch ``captures``), and the response rules and notification
targets every replica follows (branch ``responses``).

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
    Integer,
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

# One row per uploaded scan or CIS run (its findings are in the core ``findings`` table under the
# same run id). The agent's run id is the key: an upload sent again stores nothing twice.
results = Table(
    "api_results",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),  # "scan" or "cis"
    Column("subject", String(1024), nullable=False),  # the image reference, or the node
    Column("digest", String(100)),  # the image's manifest digest
    Column("finished_at", DateTime(timezone=True), nullable=False),  # as the agent says
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(80), nullable=False),
    Column("findings", Integer, nullable=False),
    Column("summary", JSON, nullable=False),  # counts, packages, coverage, benchmark (masked)
    Index("ix_api_results_kind", "kind", "received_at"),
    Index("ix_api_results_digest", "digest"),
)

# Where the leader's followers of the events table stand (Alembic branch ``leader``): the
# position (``tx``, ``seq``: the PostgreSQL-only columns of ``events`` the leader_0001 migration
# adds) of the last event handled, and the term of the leader that wrote it (fencing: a replica
# that lost the lock cannot move the cursor of the one that took it).
cursors = Table(
    "controller_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("tx", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("term", BigInteger, nullable=False),
    Column("replica", String(64)),
    Column("updated_at", DateTime(timezone=True)),
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

# The response rules and the notification targets in force, one document each (``name``:
# ``response_rules`` or ``notification_targets``), shared by every replica. The version is the
# document's stamp on the configuration sequence (stockade.store.versions), written with it.
response_documents = Table(
    "response_documents",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(80), nullable=False),
)
