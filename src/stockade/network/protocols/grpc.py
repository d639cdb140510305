"""gRPC: HTTP/2 whose HEADERS carry ``content-type: application/grpc`` (with +proto, +json...)."""

from __future__ import annotations

import re

from . import http2
from .base import FULL, STRONG, Guess

SLUG = "proto.grpc"


def _grpc(headers: list[tuple[str, str]]) -> bool:
    return any(n == "content-type" and v.startswith("application/grpc") for n, v in headers)


# gRPC is HTTP/2 whose headers say so: a rule naming gRPC waits while a connection detected as
# HTTP/2 (or HTTP/1 asking for h2c) has not shown its first request's headers.
REFINES = ("proto.http2", "proto.http")


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this gRPC (see ``could_become``): HTTP/2 is still
    possible, and the client's first header block has not arrived or says gRPC."""
    if not http2.possible(client, server):
        return False
    requests = http2.header_blocks(http2.client_frames(client))
    return not requests or any(_grpc(h) for h in requests)


def probe(client: bytes, server: bytes) -> Guess | None:
    h2 = http2.probe(client, server)
    if h2 is None:
        return None
    requests = http2.header_blocks(http2.client_frames(client))
    responses = http2.header_blocks(http2.server_frames(server))
    seen_client = any(_grpc(h) for h in requests)
    seen_server = any(_grpc(h) for h in responses)
    if not (seen_client or seen_server):
        return None
    details = []
    for headers in requests:
        fields = dict(headers)
        if ":path" in fields:
            details.append(("grpc.method", re.split(r"[?;#]", fields[":path"], maxsplit=1)[0]))
        if ":authority" in fields:
            details.append(("http.host", fields[":authority"]))
        break
    score = FULL if seen_client and (seen_server or h2.confidence >= FULL) else STRONG
    return Guess(protocol=SLUG, confidence=score, upgrade=h2.upgrade, details=tuple(details))
