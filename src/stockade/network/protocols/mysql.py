"""MySQL / MariaDB: the server speaks first with a protocol-10 greeting; a client reply of
exactly 32 bytes with CLIENT_SSL set is an SSL request (whether TLS follows is judged in
``upgrades``)."""

from __future__ import annotations

import struct

from .. import tls
from .base import FULL, STRONG, Guess, printable

SLUG = "proto.mysql"
# probe()'s best while the server has sent nothing: none, it waits for the greeting
CLIENT_ONLY_CEILING = 0.0
CLIENT_SSL = 0x0800
CLIENT_PROTOCOL_41 = 0x0200


def greeting(server: bytes) -> tuple[str, int] | None:
    """(server version, lower capability flags) of a HandshakeV10 packet."""
    if len(server) < 6 or server[3] != 0 or server[4] != 10:
        return None
    length = int.from_bytes(server[:3], "little")
    end = server.find(b"\0", 5, 5 + 64)
    if not 20 <= length <= 512 or end < 0 or not printable(server[5:end]) or end == 5:
        return None
    caps_at = end + 1 + 4 + 8 + 1
    caps = struct.unpack_from("<H", server, caps_at)[0] if len(server) >= caps_at + 2 else 0
    return server[5:end].decode("ascii"), caps


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this MySQL (see ``could_become``): the server opens
    with a protocol-10 greeting (or the start of one); a client never speaks first."""
    if not server:
        return not client
    if greeting(server) is not None:
        return True
    head = server[:5]
    if len(head) >= 2 and head[1] > 2:  # the length (little-endian) is at most 512
        return False
    if len(head) >= 3 and head[2] != 0:
        return False
    if len(head) >= 4 and head[3] != 0:
        return False
    if len(head) >= 5 and head[4] != 10:
        return False
    version = server[5 : 5 + 64]
    end = version.find(b"\0")
    # the version string so far is printable and its end, if in sight, leaves it non-empty
    return (
        end != 0
        and printable(version if end < 0 else version[:end])
        and (end > 0 or len(server) < 5 + 64)
    )


def probe(client: bytes, server: bytes) -> Guess | None:
    found = greeting(server)
    if found is None:
        return None
    version, server_caps = found
    details = [("mysql.version", version)]
    if len(client) < 8 or client[3] != 1:
        return Guess(protocol=SLUG, confidence=STRONG, details=tuple(details))
    length = int.from_bytes(client[:3], "little")
    caps = struct.unpack_from("<I", client, 4)[0]
    if length == 32 and caps & CLIENT_SSL and server_caps & CLIENT_SSL:
        # TLS starts right after the 36-byte SSL request and after the greeting packet.
        greeting_end = 4 + int.from_bytes(server[:3], "little")
        info = tls.inspect(client[36:], server[greeting_end:])
        if info is not None and info.version:
            details.append(("tls.version", info.version))
        return Guess(protocol=SLUG, confidence=FULL, details=tuple(details))
    if caps & CLIENT_PROTOCOL_41 and len(client) >= 4 + 32:
        end = client.find(b"\0", 36, 36 + 64)
        if end > 36:
            details.append(("mysql.user", client[36:end].decode("utf-8", "replace")))
    return Guess(protocol=SLUG, confidence=FULL, details=tuple(details))
