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

# The connection graph's maintained aggregate, upserted as connections and the events about them
# are stored, so the graph is read from at most (edges x hours) rows, grouped in SQL, instead of
# every connection. One row per (client node, server node, hour, encryption): encryption is
# "clear", "tls" or "unknown" (a connection blocked before its protocol was seen). Lists are
# comma-separated text and times ISO text in UTC (they sort as text), so SQL can merge hours
# (group_concat, min, max) and nothing needs parsing per row.
graph_edges = Table(
    "network_graph_edges",
    metadata,
    Column("key", String(1100), primary_key=True),  # src>dst|hour|encryption
    Column("src", String(520), nullable=False),  # node id: wl:ns/name or ext:address
    Column("dst", String(520), nullable=False),
    Column("hour", Integer, nullable=False),  # hours since the epoch (UTC)
    Column("encryption", String(8), nullable=False),
    Column("connections", Integer, nullable=False),
    Column("violations", Integer, nullable=False),
    Column("blocked", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("ports", Text, nullable=False),  # "tcp/443,tcp/80", at most MAX_LISTED
    Column("protocols", Text, nullable=False),  # "proto.http,proto.tls"
    Column("dlp", Text, nullable=False),  # "dlp.payment_card=2,dlp.us_ssn=1"
    Column("first_seen", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    # the aggregate's version (network_graph_meta) of the merge that last wrote the row: a replica
    # that holds the graph in memory reads only the rows newer than what it holds
    Column("version", BigInteger, nullable=False, server_default="0"),
    Index("ix_graph_edges_hour", "hour"),
    Index("ix_graph_edges_version", "version"),
    Index("ix_graph_edges_src", "src"),
    Index("ix_graph_edges_dst", "dst"),
)

# Every node the graph has seen: workloads (with their labels, for group membership) and
# external addresses.
graph_nodes = Table(
    "network_graph_nodes",
    metadata,
    Column("id", String(520), primary_key=True),
    Column("kind", String(16), nullable=False),  # "workload" | "external"
    Column("namespace", String(253)),
    Column("name", String(253), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("address", String(64)),  # the last address it was seen at
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0"),  # as the edges'
    Index("ix_graph_nodes_version", "version"),
)

# The aggregate's version, raised in the transaction of every merge: whoever caches an answer
# built from the graph (the API) knows from one read whether it is still the store's.
graph_meta = Table(
    "network_graph_meta",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# Who first reported each DLP finding of a connection (``flow``: ``network.interface.flow_key``,
# sensor and direction), so the graph counts it once when the sensor and the enforcer both see the
# flow: the first reporter's events count, the other's for the same finding do not. A row matches
# events within FLOW_WINDOW of its time (a client port is used again, later, for another flow).
graph_dlp_flows = Table(
    "network_graph_dlp_flows",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("flow", String(200), nullable=False),
    Column("sensor", String(80), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("reporter", String(80), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_network_graph_dlp_flows_key", "flow", "sensor", "direction", "at"),
)
