"""PostgreSQL: the client's StartupMessage (protocol 3.0), or an SSLRequest / GSSENCRequest
answered with one byte ('S' / 'G' accept, 'N' refuse). Whether the session ends up encrypted is
judged by what follows, in ``upgrades``."""

from __future__ import annotations

import struct

from .. import tls
from .base import FULL, PARTIAL, STRONG, WEAK, Guess, starts_like

SLUG = "proto.postgres"
# probe()'s best while the server has sent nothing: a startup without the answer
CLIENT_ONLY_CEILING = STRONG
PROTOCOL_3 = 196608
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
SSL_REQUEST_BYTES = struct.pack("!iI", 8, SSL_REQUEST)
GSSENC_REQUEST_BYTES = struct.pack("!iI", 8, GSSENC_REQUEST)
_AUTH_CODES = {0, 2, 3, 5, 7, 8, 9, 10, 11, 12}


def _startup(data: bytes) -> tuple[float, list[tuple[str, str]]] | None:
    if len(data) < 8:
        return None
    length, code = struct.unpack_from("!iI", data)
    if code != PROTOCOL_3 or not 8 < length <= 10000:
        return None
    body = data[8:length]
    parts = body.split(b"\0")
    pairs = dict(zip(parts[0::2], parts[1::2], strict=False))
    details = [
        (f"postgres.{key.decode()}", pairs[key].decode("utf-8", "replace"))
        for key in (b"user", b"database", b"application_name")
        if key in pairs
    ]
    complete = len(data) >= length and body.endswith(b"\0\0")
    return (STRONG if complete else PARTIAL), details


def _server_answers(server: bytes) -> bool:
    """A backend message a startup gets: Authentication ('R') or ErrorResponse ('E')."""
    if len(server) < 9 or server[:1] not in (b"R", b"E"):
        return False
    length: int = struct.unpack_from("!i", server, 1)[0]
    if server[:1] == b"R":
        code: int = struct.unpack_from("!i", server, 5)[0]
        return 8 <= length <= 2048 and code in _AUTH_CODES
    return 4 < length <= 65536


def _request(client: bytes, server: bytes, code: int) -> Guess:
    accept = b"S" if code == SSL_REQUEST else b"G"
    rest = client[8:]
    answer = server[:1]
    if answer == accept or (code == SSL_REQUEST and tls.looks_like_record(rest)):
        details: tuple[tuple[str, str], ...] = ()
        if code == SSL_REQUEST:
            info = tls.inspect(rest, server[1:])
            if info is not None:
                details = tuple(
                    (k, v) for k, v in (("tls.version", info.version), ("tls.sni", info.sni)) if v
                )
        score = FULL if answer == accept else STRONG
        return Guess(protocol=SLUG, confidence=score, details=details)
    if answer == b"N":
        started = _startup(rest)
        details2 = started[1] if started else []
        return Guess(
            protocol=SLUG, confidence=FULL, details=(("postgres.ssl", "refused"), *details2)
        )
    return Guess(protocol=SLUG, confidence=STRONG)


def _opening(client: bytes) -> bool:
    """The first 8 bytes so far fit an SSLRequest, a GSSENCRequest, a CancelRequest or a
    protocol 3.0 StartupMessage (length 9-10000)."""
    head = client[:8]
    fixed = (SSL_REQUEST_BYTES, GSSENC_REQUEST_BYTES, struct.pack("!iI", 16, CANCEL_REQUEST))
    if starts_like(head, *fixed):
        return True
    code = struct.pack("!I", PROTOCOL_3)
    if not code.startswith(head[4:8]):
        return False
    length = head[:4]
    low, high = (9).to_bytes(4, "big"), (10000).to_bytes(4, "big")
    # the length's bytes so far lie between those of 9 and 10000 (big-endian: a prefix compare)
    return low[: len(length)] <= length <= high[: len(length)]


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this PostgreSQL (see ``could_become``): the client
    opens with a startup packet or a request (or the start of one); a backend never speaks
    first."""
    if not client:
        return not server or server[:1] in (b"R", b"E")
    if len(client) < 8:
        return _opening(client)
    return probe(client, server) is not None


def probe(client: bytes, server: bytes) -> Guess | None:
    if len(client) >= 8:
        length, code = struct.unpack_from("!iI", client)
        if length == 8 and code in (SSL_REQUEST, GSSENC_REQUEST):
            return _request(client, server, code)
        if length == 16 and code == CANCEL_REQUEST:
            return Guess(
                protocol=SLUG, confidence=STRONG, details=(("postgres.message", "cancel"),)
            )
        started = _startup(client)
        if started is not None:
            score, details = started
            if _server_answers(server):
                score = FULL
            return Guess(protocol=SLUG, confidence=score, details=tuple(details))
        return None
    if len(client) >= 4 and SSL_REQUEST_BYTES.startswith(client):
        return Guess(protocol=SLUG, confidence=WEAK)
    if not client and _server_answers(server):
        return Guess(protocol=SLUG, confidence=PARTIAL)
    return None
