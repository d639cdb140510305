"""DNS over UDP (the message itself) and TCP (a 2-byte length, then the message): header sanity
and the question section."""

from __future__ import annotations

import struct

from .base import FULL, PARTIAL, STRONG, Guess

SLUG = "proto.dns"
# probe()'s best while the server has sent nothing: a query without the answer
CLIENT_ONLY_CEILING = STRONG
QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    43: "DS",
    48: "DNSKEY",
    64: "SVCB",
    65: "HTTPS",
    252: "AXFR",
    255: "ANY",
    257: "CAA",
}
_OPCODES = {0, 1, 2, 4, 5}
_CLASSES = {1, 3, 4, 254, 255}


def _name(msg: bytes, pos: int) -> tuple[str, int] | None:
    labels: list[str] = []
    total = 0
    while pos < len(msg):
        n = msg[pos]
        if n == 0:
            return ".".join(labels) + ".", pos + 1
        if n & 0xC0:  # compression pointer: not expected in a first question
            return None
        label = msg[pos + 1 : pos + 1 + n]
        total += n + 1
        if len(label) < n or total > 255 or not all(32 < b < 127 for b in label):
            return None
        labels.append(label.decode("ascii"))
        pos += 1 + n
    return None


def parse(msg: bytes) -> tuple[bool, int, str, str, int] | None:
    """(is response, id, qname, qtype, rcode) when ``msg`` is a sane DNS message."""
    if len(msg) < 17:
        return None
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg)
    response = bool(flags & 0x8000)
    if (flags >> 11) & 0xF not in _OPCODES or not 1 <= qd <= 4 or flags & 0x0040:
        return None
    if not response and (an > 0 or ns > 0 or ar > 4 or flags & 0x000F):
        return None
    parsed = _name(msg, 12)
    if parsed is None or len(msg) < parsed[1] + 4:
        return None
    name, pos = parsed
    qtype, qclass = struct.unpack_from("!HH", msg, pos)
    if qclass & 0x7FFF not in _CLASSES:
        return None
    return response, ident, name, QTYPES.get(qtype, str(qtype)), flags & 0xF


def _one_side(data: bytes) -> tuple[str, tuple[bool, int, str, str, int]] | None:
    declared = struct.unpack_from("!H", data)[0] if len(data) >= 2 else 0
    if declared >= 17:  # TCP: one length-prefixed message (maybe followed by more)
        tcp = parse(data[2 : 2 + declared])
        if tcp is not None:
            return "tcp", tcp
    udp = parse(data)
    return ("udp", udp) if udp is not None else None


def _query_start(msg: bytes) -> bool:
    """``msg`` is a query, or could still become one: its header fields so far are a query's and
    its question name so far is made of sane labels."""
    if parse(msg) is not None:
        return not parse(msg)[0]  # type: ignore[index]
    if len(msg) >= 4:
        flags = struct.unpack_from("!H", msg, 2)[0]
        if flags & 0x8000 or (flags >> 11) & 0xF not in _OPCODES or flags & 0x004F:
            return False
    if len(msg) >= 6 and not 1 <= struct.unpack_from("!H", msg, 4)[0] <= 4:
        return False
    if len(msg) >= 10 and msg[6:10] != bytes(4):
        return False
    if len(msg) >= 12 and struct.unpack_from("!H", msg, 10)[0] > 4:
        return False
    pos, total = 12, 0
    while pos < len(msg):
        n = msg[pos]
        if n == 0:
            return len(msg) < pos + 5  # the name ended: only its type and class were missing
        label = msg[pos + 1 : pos + 1 + n]
        total += n + 1
        if n & 0xC0 or total > 255 or not all(32 < b < 127 for b in label):
            return False
        pos += 1 + n
    return True


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this DNS (see ``could_become``): the client opens
    with a query, over TCP after its 2-byte length (or the start of one)."""
    if not client:
        return not server or _one_side(server) is not None  # an answer alone (a datagram)
    if len(client) < 2:
        return True
    declared = struct.unpack_from("!H", client)[0]
    tcp = declared >= 17 and _query_start(client[2 : 2 + declared])
    return tcp or _query_start(client)


def probe(client: bytes, server: bytes) -> Guess | None:
    query = _one_side(client) if client else None
    answer = _one_side(server) if server else None
    if query is not None and query[1][0]:
        query = None  # a client does not open with a response
    if answer is not None and not answer[1][0]:
        answer = None
    if query is None and answer is None:
        return None
    transport, (_, ident, name, qtype, _rcode) = query or answer  # type: ignore[misc]
    details = [("dns.transport", transport), ("dns.qname", name), ("dns.qtype", qtype)]
    if query and answer and answer[1][1] == ident:
        score = FULL
        details.append(("dns.rcode", str(answer[1][4])))
    elif query:
        score = STRONG
    else:
        score = PARTIAL
    return Guess(protocol=SLUG, confidence=score, details=tuple(details))
