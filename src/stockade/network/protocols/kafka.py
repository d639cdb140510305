"""Kafka: length-prefixed requests with api_key, api_version, correlation id and client id; the
response repeats the correlation id."""

from __future__ import annotations

import struct

from .base import FULL, PARTIAL, STRONG, Guess, printable

SLUG = "proto.kafka"
# probe()'s best while the server has sent nothing: a request without the response's correlation id
CLIENT_ONLY_CEILING = STRONG
MAX_API_KEY, MAX_API_VERSION = 80, 20
API_NAMES = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    17: "SaslHandshake",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    22: "InitProducerId",
    32: "DescribeConfigs",
    36: "SaslAuthenticate",
}


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this Kafka (see ``could_become``): the client opens
    with a request header whose fields so far are in range."""
    if not client:
        return not server
    if len(client) >= 14:
        return probe(client, b"") is not None
    if len(client) >= 4 and not 10 <= struct.unpack_from("!i", client)[0] <= 100 * 1024 * 1024:
        return False
    if len(client) >= 6 and not 0 <= struct.unpack_from("!h", client, 4)[0] <= MAX_API_KEY:
        return False
    return len(client) < 8 or 0 <= struct.unpack_from("!h", client, 6)[0] <= MAX_API_VERSION


def probe(client: bytes, server: bytes) -> Guess | None:
    if len(client) < 14:
        return None
    size, api_key, api_version, correlation, id_len = struct.unpack_from("!ihhih", client)
    if not 10 <= size <= 100 * 1024 * 1024 or not 0 <= api_key <= MAX_API_KEY:
        return None
    if not 0 <= api_version <= MAX_API_VERSION or not -1 <= id_len <= 255 or 10 + id_len > size:
        return None
    client_id = client[14 : 14 + max(id_len, 0)]
    if not printable(client_id):
        return None
    details = [
        ("kafka.api", API_NAMES.get(api_key, str(api_key))),
        ("kafka.api_version", str(api_version)),
    ]
    if client_id:
        details.append(("kafka.client_id", client_id.decode("ascii")))
    # A 4-byte length, two small shorts and a printable id still happen by chance in binary data.
    score = STRONG if len(client) >= size + 4 and id_len >= 0 else PARTIAL
    if len(server) >= 8:
        rsize, rcorr = struct.unpack_from("!ii", server)
        if rcorr == correlation and 4 <= rsize <= 100 * 1024 * 1024:
            score = FULL
    return Guess(protocol=SLUG, confidence=score, details=tuple(details))
