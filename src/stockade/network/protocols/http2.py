"""HTTP/2 in clear: the prior-knowledge preface, the server's SETTINGS frame, or an accepted
``Upgrade: h2c``. Frame and header-block reading is shared with the gRPC detector."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from . import http1
from .base import FULL, PARTIAL, STRONG, WEAK, Guess, starts_like
from .hpack import Decoder, HpackError

SLUG = "proto.http2"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, CONTINUATION = 0, 1, 4, 9
_FLAG_END_HEADERS, _FLAG_PADDED, _FLAG_PRIORITY = 0x4, 0x8, 0x20


_EMPTY = Guess(protocol=SLUG, confidence=0.0)


def frames(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each complete frame."""
    pos = 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        stream = struct.unpack_from("!I", data, pos + 5)[0] & 0x7FFFFFFF
        payload = data[pos + 9 : pos + 9 + length]
        if len(payload) < length:
            return
        yield ftype, flags, stream, payload
        pos += 9 + length


# Detection needs the first requests only; bounding the work keeps a flood of flows with huge
# header blocks from costing seconds of bit-by-bit Huffman decoding.
MAX_HEADER_BYTES = 16384
MAX_HEADER_BLOCKS = 4


def header_blocks(data: bytes) -> list[list[tuple[str, str]]]:
    """Decoded header lists of the first HEADERS (+CONTINUATION) frames in one direction."""
    decoder = Decoder()
    out: list[list[tuple[str, str]]] = []
    block = bytearray()
    for ftype, flags, _stream, payload in frames(data[:MAX_HEADER_BYTES]):
        if len(out) >= MAX_HEADER_BLOCKS:
            break
        if ftype == HEADERS:
            pad = payload[0] if flags & _FLAG_PADDED and payload else 0
            start = (1 if flags & _FLAG_PADDED else 0) + (5 if flags & _FLAG_PRIORITY else 0)
            block = bytearray(payload[start : len(payload) - pad])
        elif ftype == CONTINUATION:
            block += payload
        else:
            continue
        if flags & _FLAG_END_HEADERS or (ftype == CONTINUATION and flags & _FLAG_END_HEADERS):
            try:
                out.append(decoder.decode(bytes(block)))
            except HpackError:
                return out
            block = bytearray()
    return out


def server_settings_first(server: bytes) -> bool:
    if len(server) < 9:
        return False
    length = int.from_bytes(server[:3], "big")
    return (
        server[3] == SETTINGS
        and server[4] in (0, 1)
        and length % 6 == 0
        and server[5:9] == bytes(4)
    )


def client_frames(client: bytes) -> bytes:
    """The client's frames: after the preface, or after an h2c upgrade request's headers."""
    if client.startswith(PREFACE):
        return client[len(PREFACE) :]
    end = client.find(b"\r\n\r\n")
    rest = client[end + 4 :] if end >= 0 else b""
    return rest[len(PREFACE) :] if rest.startswith(PREFACE) else b""


def server_frames(server: bytes) -> bytes:
    if server.startswith(b"HTTP/1.1 101"):
        end = server.find(b"\r\n\r\n")
        return server[end + 4 :] if end >= 0 else b""
    return server


def request_details(client: bytes) -> list[tuple[str, str]]:
    for headers in header_blocks(client_frames(client)):
        fields = dict(headers)
        out = []
        for key, name in (
            (":method", "http.method"),
            (":path", "http.path"),
            (":authority", "http.host"),
        ):
            value = fields.get(key)
            if key == ":path" and value is not None:
                value = http1.target_path(value)
            if value:
                out.append((name, value))
        return out
    return []


def _upgrade_h2c(client: bytes, server: bytes) -> bool:
    # The cheap tests first: this runs on the first bytes of every connection.
    if not server.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
        return False
    upgrade = http1.request_header(client, "upgrade") or ""
    return "h2c" in [t.strip().lower() for t in upgrade.split(",")]


# A connection detected as HTTP/1 can still turn out HTTP/2 (an accepted ``Upgrade: h2c``): a
# rule naming HTTP/2 waits while that is possible (see the enforcer's _awaited_app).
REFINES = ("proto.http",)


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this HTTP/2 (see ``could_become``): the client opens
    with the preface (or its start), or with an HTTP/1 request that asks for ``Upgrade: h2c``
    (or whose headers have not ended), and the server has not answered it otherwise."""
    if not client:
        return not server or starts_like(server, b"HTTP/1.1 101") or server_settings_first(server)
    if starts_like(client, PREFACE):
        return True
    if not http1.possible(client, server):
        return False
    if server:
        return starts_like(server, b"HTTP/1.1 101", b"HTTP/1.0 101")
    if b"\r\n\r\n" not in client and b"\n\n" not in client:
        return True  # the headers go on: an Upgrade may still come
    upgrade = http1.request_header(client, "upgrade") or ""
    return "h2c" in [t.strip().lower() for t in upgrade.split(",")]


def probe(client: bytes, server: bytes) -> Guess | None:
    upgrade = None
    if client.startswith(PREFACE):
        score = FULL
    elif len(client) >= 4 and PREFACE.startswith(client[:24]):
        score = PARTIAL if len(client) >= 8 else WEAK
    elif _upgrade_h2c(client, server):
        score, upgrade = FULL, "h2c"
    elif not client and server_settings_first(server):
        score = STRONG
    else:
        return None
    if score < FULL and server_settings_first(server):
        score = FULL if score >= PARTIAL else STRONG
    details = request_details(client)
    if upgrade and not details:
        details = [d for d in (http1.probe(client, b"") or _EMPTY).details]
    return Guess(protocol=SLUG, confidence=score, upgrade=upgrade, details=tuple(details))
