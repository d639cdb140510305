"""QUIC (RFC 9000, 8999, 9369) over UDP: a flow's first datagrams, told by the long header every
version shares. Encrypted from its first packet: even the Initial packets' payload is protected
(with keys anyone can derive, so only the handshake's framing, never application data, travels
in a form a passive reader can open).

The client's first datagram carries an Initial packet and is padded to at least 1200 bytes
(RFC 9000, 14.1); its long header is the first byte (header form and fixed bits set, packet type
Initial), a known version, and the destination and source connection ids (at most 20 bytes each
in the versions known here). The server answers with a long header packet of the same version,
or a Version Negotiation packet (version 0) that echoes the client's connection ids.
"""

from __future__ import annotations

from .base import FULL, STRONG, Guess

SLUG = "proto.quic"
CLIENT_ONLY_CEILING = STRONG
MIN_INITIAL = 1200  # a client's Initial datagram is padded to this many bytes at least
VERSIONS = {0x00000001: "1", 0x6B3343CF: "2"}  # RFC 9000, RFC 9369
_DRAFT = 0xFF000000  # 0xff0000NN: the IETF drafts
_INITIAL = {0x00000001: 0, 0x6B3343CF: 1}  # the long header type bits of an Initial packet


def _version(value: int) -> str | None:
    if value in VERSIONS:
        return VERSIONS[value]
    if value & 0xFFFFFF00 == _DRAFT and 0x1D <= value & 0xFF <= 0x22:
        return f"draft-{value & 0xFF}"
    return None


def _long_header(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(version, destination id, source id) of a long header packet, or None."""
    if len(data) < 7 or data[0] & 0xC0 != 0xC0:  # header form 1, fixed bit 1
        return None
    version = int.from_bytes(data[1:5], "big")
    dcid_len = data[5]
    if dcid_len > 20 or len(data) < 7 + dcid_len:
        return None
    dcid = data[6 : 6 + dcid_len]
    scid_len = data[6 + dcid_len]
    if scid_len > 20 or len(data) < 7 + dcid_len + scid_len:
        return None
    return version, dcid, data[7 + dcid_len : 7 + dcid_len + scid_len]


def _client_initial(client: bytes) -> tuple[int, str, bytes, bytes] | None:
    header = _long_header(client)
    if header is None or len(client) < MIN_INITIAL:
        return None
    version, dcid, scid = header
    name = _version(version)
    if name is None or len(dcid) < 8:  # a client's first destination id is 8 bytes at least
        return None
    kind = (client[0] >> 4) & 0x3
    if kind != _INITIAL.get(version, 0):
        return None
    return version, name, dcid, scid


def _server_answers(server: bytes, version: int, dcid: bytes, scid: bytes) -> bool:
    if len(server) < 7 or not server[0] & 0x80:  # a long header
        return False
    answered = int.from_bytes(server[1:5], "big")
    if answered == 0:  # Version Negotiation: the client's ids, swapped
        ids = server[5 : 7 + len(scid) + len(dcid)]
        return ids == bytes([len(scid)]) + scid + bytes([len(dcid)]) + dcid
    header = _long_header(server)
    return header is not None and header[0] == version


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this QUIC (see ``could_become``): the client's first
    datagram has a long header and is padded to 1200 bytes."""
    if not client:
        return not server
    if client[0] & 0xC0 != 0xC0:
        return False
    return len(client) < MIN_INITIAL or _client_initial(client) is not None


def probe(client: bytes, server: bytes) -> Guess | None:
    found = _client_initial(client)
    if found is None:
        return None
    version, name, dcid, scid = found
    details = (("quic.version", name),)
    if server and _server_answers(server, version, dcid, scid):
        return Guess(protocol=SLUG, confidence=FULL, encrypted=True, details=details)
    return Guess(protocol=SLUG, confidence=STRONG, encrypted=True, details=details)
