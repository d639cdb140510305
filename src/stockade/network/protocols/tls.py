"""TLS from the first byte: a handshake record carrying a ClientHello (or an SSLv2-compatible
hello) from the client, a ServerHello from the server. The connection counts as encrypted only
when one of the hellos parses completely (see ``tls.opens_with_hello``), or, for a connection
the capture joined after its handshake, when both directions are nothing but chains of sealed
records (``tls.joined_mid_connection``): then its version is unknown."""

from __future__ import annotations

from .. import tls
from ..interface import TlsInfo
from .base import FULL, PARTIAL, STRONG, WEAK, Guess

SLUG = "proto.tls"
# probe()'s best while the server has sent nothing: a ClientHello alone
CLIENT_ONLY_CEILING = STRONG
# the detail of a connection joined after its handshake (no hello: no version, SNI or cipher)
JOINED = (("tls.joined", "mid-connection"),)


def tls_details(info: TlsInfo) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in (
        ("tls.version", info.version),
        ("tls.sni", info.sni),
        ("tls.alpn", ",".join(info.alpn) or None),
        ("tls.cipher", info.cipher),
    ):
        if value:
            out.append((key, value))
    return tuple(out)


def _client_score(client: bytes) -> float:
    if tls.looks_like_sslv2_hello(client):
        return STRONG
    if not client or client[0] != tls.HANDSHAKE:
        return 0.0
    if len(client) < 5:
        return WEAK if client[1:2] in (b"", b"\x03") else 0.0
    if not tls.looks_like_record(client):
        return 0.0
    if len(client) < 6:
        return PARTIAL
    return STRONG if client[5] == tls.CLIENT_HELLO else 0.0


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this a TLS connection whose hello parses: the bytes
    so far are a hello, or the start of one (see :func:`could_become`)."""
    if client:
        return tls.opens_with_hello(client, server=False).state != "clear"
    return not server or tls.opens_with_hello(server, server=True).state != "clear"


def _server_score(server: bytes) -> float:
    if len(server) >= 6 and tls.looks_like_record(server) and server[5] == tls.SERVER_HELLO:
        return STRONG
    return 0.0


def probe(client: bytes, server: bytes) -> Guess | None:
    cs, ss = _client_score(client), _server_score(server)
    if not cs and not ss:
        if tls.joined_mid_connection(client, server):
            return Guess(protocol=SLUG, confidence=STRONG, encrypted=True, details=JOINED)
        return None
    score = FULL if cs >= PARTIAL and ss else max(cs, ss)
    info = tls.inspect(client, server)
    details = tls_details(info) if info else ()
    # Encrypted only behind a hello that parses: a record header alone proves nothing.
    encrypted = (
        tls.opens_with_hello(client, server=False).state == "tls"
        or tls.opens_with_hello(server, server=True).state == "tls"
    )
    return Guess(protocol=SLUG, confidence=score, encrypted=encrypted, details=details)
