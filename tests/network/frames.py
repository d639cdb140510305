"""Builders for test frames and capture files (byte layouts from the pcap/pcapng specs)."""

from __future__ import annotations

import ipaddress
import struct

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(
    src: str, dst: str, proto: int, l4: bytes, *, options: bytes = b"", frag: int = 0
) -> bytes:
    ihl = 5 + len(options) // 4
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(l4),
        1,
        frag,
        64,
        proto,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return hdr + options + l4


def ipv6(src: str, dst: str, proto: int, l4: bytes, *, ext: list[tuple[int, bytes]] = ()) -> bytes:
    """``ext``: (header type, body) pairs, bodies padded to 8-byte units minus the 2-byte head."""
    chain = b""
    types = [t for t, _ in ext] + [proto]
    for i, (_t, body) in enumerate(ext):
        unit = (len(body) + 2 + 7) // 8
        chain += bytes([types[i + 1], unit - 1]) + body.ljust(unit * 8 - 2, b"\0")
    first = types[0]
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(chain) + len(l4),
            first,
            64,
            ipaddress.ip_address(src).packed,
            ipaddress.ip_address(dst).packed,
        )
        + chain
        + l4
    )


def ether(ip: bytes, *, vlans: tuple[int, ...] = ()) -> bytes:
    etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    macs = b"\x02" * 6 + b"\x04" * 6
    if not vlans:
        return macs + struct.pack("!H", etype) + ip
    # each tag carries the next tag's TPID as its inner type; the last carries the real type
    tags = struct.pack("!H", 0x8100)
    for i, v in enumerate(vlans):
        tags += struct.pack("!HH", v, 0x8100 if i + 1 < len(vlans) else etype)
    return macs + tags + ip


def mpls(ip: bytes, labels: tuple[int, ...] = (16,), *, vlans: tuple[int, ...] = ()) -> bytes:
    """An Ethernet frame carrying ``ip`` under an MPLS label stack (RFC 3032: label, traffic
    class, bottom-of-stack bit, TTL), the last label marked the bottom."""
    stack = b"".join(
        struct.pack("!I", label << 12 | (1 << 8 if i == len(labels) - 1 else 0) | 64)
        for i, label in enumerate(labels)
    )
    tags = b"".join(struct.pack("!HH", 0x8100, v) for v in vlans)
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", 0x8847) + stack + ip


def pppoe(
    ip: bytes, *, compressed: bool = False, code: int = 0, session: int = 0x11, proto: int = 0
) -> bytes:
    """An Ethernet frame of a PPPoE session (RFC 2516) carrying ``ip`` as PPP protocol 0x0021 or
    0x0057 (or ``proto``), the protocol field in one byte with ``compressed`` (RFC 1661 6.5)."""
    proto = proto or (0x21 if ip[0] >> 4 == 4 else 0x57)
    field = bytes([proto]) if compressed else struct.pack("!H", proto)
    body = field + ip
    head = struct.pack("!BBHH", 0x11, code, session, len(body))
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", 0x8864) + head + body


def nflog(ip: bytes, *, big: bool = False, prefix: bytes = b"stockade") -> bytes:
    """A LINKTYPE_NFLOG frame: family, version 0, resource id, then TLVs (the packet header, a
    prefix, the payload) whose length and type are in the capturing host's byte order."""
    o = ">" if big else "<"
    family = 2 if ip[0] >> 4 == 4 else 10

    def tlv(kind: int, value: bytes) -> bytes:
        raw = struct.pack(o + "HH", 4 + len(value), kind) + value
        return raw.ljust((len(raw) + 3) & ~3, b"\0")

    hw = 0x0800 if family == 2 else 0x86DD
    return (
        struct.pack("!BBH", family, 0, 42)
        + tlv(1, struct.pack("!HBB", hw, 3, 0))
        + tlv(10, prefix + b"\0")
        + tlv(9, ip)
    )


def sll(ip: bytes, pkttype: int = 0) -> bytes:
    etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x02" * 6 + b"\0\0", etype) + ip


def sll2(ip: bytes, pkttype: int = 0) -> bytes:
    etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return struct.pack("!HHIHBB8s", etype, 0, 3, 1, pkttype, 6, b"\x02" * 6 + b"\0\0") + ip


def pcap(
    frames: list[tuple[float, bytes]], *, linktype: int = 1, big: bool = False, nano: bool = False
) -> bytes:
    o = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for ts, data in frames:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out.append(struct.pack(o + "IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def _block(o: str, btype: int, body: bytes) -> bytes:
    body = body.ljust((len(body) + 3) & ~3, b"\0")
    n = len(body) + 12
    return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)


def pcapng(
    frames: list[tuple[float, bytes]],
    *,
    linktype: int = 1,
    big: bool = False,
    tsresol: int | None = None,
    simple: bool = False,
) -> bytes:
    o = ">" if big else "<"
    shb = _block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = b""
    if tsresol is not None:
        opts = (
            struct.pack(o + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(o + "HH", 0, 0)
        )
    idb = _block(o, 1, struct.pack(o + "HHI", linktype, 0, 65535) + opts)
    tick = 10.0 ** -(tsresol if tsresol is not None else 6)
    out = [shb, idb]
    for ts, data in frames:
        if simple:
            out.append(_block(o, 3, struct.pack(o + "I", len(data)) + data))
            continue
        t = round(ts / tick)
        out.append(
            _block(
                o,
                6,
                struct.pack(o + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data,
            )
        )
    return b"".join(out)


def pcapng_interfaces(
    links: list[int],
    frames: list[tuple[int, float, bytes]],
    *,
    offsets: list[int] | None = None,
    big: bool = False,
) -> bytes:
    """One pcapng section with an interface per link type in ``links`` (microsecond ticks; with
    ``offsets``, each interface's ``if_tsoffset`` in seconds) and Enhanced Packet blocks of
    ``(interface, time, frame)``, the time written less its interface's offset."""
    o = ">" if big else "<"
    shift = offsets or [0] * len(links)
    out = [_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for link, seconds in zip(links, shift, strict=True):
        opts = (
            struct.pack(o + "HHq", 14, 8, seconds) + struct.pack(o + "HH", 0, 0) if seconds else b""
        )
        out.append(_block(o, 1, struct.pack(o + "HHI", link, 0, 65535) + opts))
    for iface, ts, data in frames:
        t = round((ts - shift[iface]) * 1e6)
        head = struct.pack(o + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), len(data))
        out.append(_block(o, 6, head + data))
    return b"".join(out)


def conversation(
    client: str,
    server: str,
    cport: int,
    sport: int,
    request: bytes,
    response: bytes,
    *,
    v6: bool = False,
    isn: int = 1000,
    split: int | None = None,
) -> list[bytes]:
    """A whole TCP conversation as IP packets: handshake, request (optionally in two segments),
    response, FIN both ways."""
    ip = ipv6 if v6 else ipv4
    c, s = isn, 50000
    out = [
        ip(client, server, 6, tcp(cport, sport, c, 0, SYN)),
        ip(server, client, 6, tcp(sport, cport, s, c + 1, SYN | ACK)),
        ip(client, server, 6, tcp(cport, sport, c + 1, s + 1, ACK)),
    ]
    parts = [request] if split is None else [request[:split], request[split:]]
    seq = c + 1
    for p in parts:
        out.append(ip(client, server, 6, tcp(cport, sport, seq, s + 1, ACK | PSH, p)))
        seq += len(p)
    out.append(ip(server, client, 6, tcp(sport, cport, s + 1, seq, ACK | PSH, response)))
    out.append(ip(client, server, 6, tcp(cport, sport, seq, s + 1 + len(response), ACK | FIN)))
    out.append(ip(server, client, 6, tcp(sport, cport, s + 1 + len(response), seq + 1, ACK | FIN)))
    return out


def h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 section 4.1)."""
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([ftype, flags])
        + struct.pack("!I", stream)
        + payload
    )


def hpack_literals(fields: list[tuple[str, str]]) -> bytes:
    """A header block of literal fields without indexing (RFC 7541 section 6.2.2), no Huffman;
    names and values under 127 bytes."""
    out = bytearray()
    for name, value in fields:
        n, v = name.encode(), value.encode()
        out += bytes([0x00, len(n)]) + n + bytes([len(v)]) + v
    return bytes(out)


def dialogue(
    client: str,
    server: str,
    cport: int,
    sport: int,
    turns: list[tuple[int, bytes]],
    *,
    isn: int = 1000,
) -> list[bytes]:
    """A TCP conversation of several turns as IP packets: handshake, one segment per turn
    (direction 0: client to server, 1: server to client), FIN both ways."""
    seq = [isn + 1, 50001]
    ends = [(client, cport), (server, sport)]
    out = [
        ipv4(client, server, 6, tcp(cport, sport, isn, 0, SYN)),
        ipv4(server, client, 6, tcp(sport, cport, 50000, isn + 1, SYN | ACK)),
        ipv4(client, server, 6, tcp(cport, sport, isn + 1, 50001, ACK)),
    ]
    for d, data in [*turns, (0, b""), (1, b"")]:
        (src, sp), (dst, dp) = ends[d], ends[1 - d]
        flags = ACK | (PSH if data else FIN)
        out.append(ipv4(src, dst, 6, tcp(sp, dp, seq[d], seq[1 - d], flags, data)))
        seq[d] += len(data) or 1
    return out
