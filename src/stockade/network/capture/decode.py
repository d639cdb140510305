"""Frame decoding with ``struct`` on the capture buffer itself: no per-packet objects beyond the
flow key. Ethernet (with 802.1Q/802.1ad tags), Linux SLL and SLL2, raw IPv4/IPv6, BSD loopback
(NULL and OpenBSD's LOOP), Linux NFLOG; behind an EtherType, IPv4 and IPv6 also under an MPLS
label stack or a PPPoE session; IPv4 options and fragments, IPv6 extension headers; TCP and UDP
handed to a sink."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

# pcap LINKTYPE_* values
LINK_NULL = 0
LINK_ETHERNET = 1
LINK_RAW = 101
LINK_LOOP = 108  # OpenBSD's loopback: NULL's 4-byte address family, always in network order
LINK_LINUX_SLL = 113
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_NFLOG = 239  # Linux NFLOG: a family, then TLVs, the packet in NFULA_PAYLOAD
LINK_LINUX_SLL2 = 276

# a frame's buffer (capture ring, file map or bytes) and a flow key (src, sport, dst, dport, proto)
Buf: TypeAlias = bytes | bytearray | memoryview | mmap.mmap
FlowKey: TypeAlias = tuple[bytes, int, bytes, int, int]

SUPPORTED_LINKTYPES = frozenset(
    {
        LINK_NULL,
        LINK_ETHERNET,
        LINK_RAW,
        LINK_LOOP,
        LINK_LINUX_SLL,
        LINK_IPV4,
        LINK_IPV6,
        LINK_LINUX_SLL2,
        LINK_NFLOG,
    }
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
ETH_MPLS = frozenset({0x8847, 0x8848})  # unicast, multicast: a label stack, then IP
ETH_PPPOE = 0x8864  # a PPPoE session (RFC 2516); its discovery (0x8863) carries no IP
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
NFULA_PAYLOAD = 9
PACKET_OUTGOING = 4

_U16 = struct.Struct("!H").unpack_from
_IPV4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_IPV6 = struct.Struct("!IHBB16s16s").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from
_UDP = struct.Struct("!HHH").unpack_from
_LE32 = struct.Struct("<I").unpack_from
_U32 = struct.Struct("!I").unpack_from
# The common frame in one unpack: Ethernet without tags, IPv4 without options, TCP
_ETH_IPV4_TCP = struct.Struct("!12xHBxHxxHxB2x4s4sHHIIBB").unpack_from
_ETH_IPV4_TCP_LEN = 14 + 20 + 14
# The same without the link header (raw IP: what NFQUEUE hands the firewall)
_IPV4_TCP = struct.Struct("!BxHxxHxB2x4s4sHHIIBB").unpack_from
_IPV4_TCP_LEN = 20 + 14

_IPV6_EXT = frozenset(
    {0, 43, 60, 135, 139, 140}
)  # hop-by-hop, routing, dst opts, mobility, HIP, shim6

# Overlay networks (a node's capture of pod traffic between nodes): IP in IP (Calico), IPv6 in
# IP, GRE, VXLAN (IANA's port and the Linux kernel's, Flannel's) and Geneve are opened and their
# inner packets decoded as the pods' own; at most MAX_TUNNELS levels deep (deeper is "other").
IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE = 4, 41, 47
VXLAN_PORTS = frozenset({4789, 8472})
GENEVE_PORT = 6081
ETH_TEB = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows (GRE, Geneve)
MAX_TUNNELS = 3

# IP fragments (IPv4 and IPv6's fragment header) are put together again, the first copy of each
# 8-byte unit kept (as TCP overlaps keep the first), within bounds a hostile capture cannot grow:
# at most FRAG_PENDING datagrams waiting (past it the longest waiting is given up), each given
# up FRAG_TIMEOUT seconds of capture time after its first fragment; none longer than FRAG_MAX.
# A packet an "any" capture saw twice (forwarded: in on one interface, out on another; loopback:
# out and in on lo) is read once: an SLL frame repeating, TTL and checksum aside, one of the
# last COPY_WINDOW SLL frames of the other direction is skipped. A host's own traffic to or
# from elsewhere is seen once, outgoing or incoming, and kept.
COPY_WINDOW = 32

FRAG_PENDING = 64
FRAG_TIMEOUT = 30.0
FRAG_MAX = 65535


class Sink(Protocol):
    def tcp(
        self,
        ts: float,
        key: FlowKey,
        flags: int,
        seq: int,
        ack: int,
        buf: Buf,
        off: int,
        length: int,
    ) -> None: ...

    def udp(self, ts: float, key: FlowKey, buf: Buf, off: int, length: int) -> None: ...


# A sink may also take the other IP protocols (ICMP, SCTP, GRE, ...): ``other(ts, proto, src,
# dst, buf, off, length)`` with the protocol's header and payload at ``buf[off:off + length]``
# (the firewall judges them; a sensor without it only counts them).
OtherSink = Callable[[float, int, bytes, bytes, Buf, int, int], None]


@dataclass(slots=True)
class DecodeStats:
    frames: int = 0
    bytes: int = 0
    ipv4: int = 0
    ipv6: int = 0
    tcp: int = 0
    udp: int = 0
    other: int = 0
    fragments: int = 0
    ipv4_options: int = 0
    malformed: int = 0
    outgoing_skipped: int = 0
    linktypes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


class _Datagram:
    """One datagram being put together: its bytes, which 8-byte units arrived, its length once
    the last fragment came (else -1), the protocol its first fragment names."""

    __slots__ = ("data", "first", "proto", "total", "units")

    def __init__(self, first: float) -> None:
        self.first = first
        self.data = bytearray(FRAG_MAX)
        self.units = bytearray((FRAG_MAX + 7) >> 3)
        self.total = -1
        self.proto = -1


def _ethernet(buf: Buf, off: int, end: int) -> tuple[int, int] | None:
    """An Ethernet frame at ``buf[off:end]``: the EtherType after any 802.1Q/802.1ad tags and
    where the payload starts; None when the frame is cut short."""
    if end - off < 14:
        return None
    etype = _U16(buf, off + 12)[0]
    off += 14
    while etype in ETH_VLAN:
        if off + 4 > end:
            return None
        etype = _U16(buf, off + 2)[0]
        off += 4
    return etype, off


def _nflog(buf: Buf, off: int, end: int) -> tuple[int, int] | None:
    """An NFLOG frame at ``buf[off:end]`` (LINKTYPE_NFLOG: family, version, resource id, then
    TLVs of a length and a type in the capturing host's byte order, each padded to 4 bytes):
    where its NFULA_PAYLOAD (the packet from its network header on) starts and ends, the same
    offset twice when it has none; None when a TLV runs past the frame."""
    if end - off < 4 or buf[off + 1] != 0:  # version 0
        return None
    off += 4
    big = None
    while end - off >= 4:
        if big is None:  # the first TLV tells the order: its type is a small number
            big = buf[off + 2] == 0 and buf[off + 3] != 0
        length = _U16(buf, off)[0] if big else buf[off] | buf[off + 1] << 8
        kind = _U16(buf, off + 2)[0] if big else buf[off + 2] | buf[off + 3] << 8
        if length < 4 or off + length > end:
            return None
        if kind == NFULA_PAYLOAD:
            return off + 4, off + length
        off += (length + 3) & ~3
    return end, end


class Decoder:
    """Turns frames into ``sink.tcp``/``sink.udp`` calls.

    ``skip_outgoing``: with SLL captures on "any" a forwarded packet shows up twice (in on the
    sender's interface, out on the receiver's), a loopback one too (out and in on lo): the second
    copy is skipped (``COPY_WINDOW``); a packet seen once (a host's own traffic) is kept. ``tunnels``: open overlay encapsulations; ``fragments``: put
    IP fragments together (the sensor; the firewall's inspector judges the packets it is handed
    as they are, after the kernel's own reassembly).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        skip_outgoing: bool = True,
        tunnels: bool = False,
        fragments: bool = False,
    ) -> None:
        self.stats = DecodeStats()
        self._tcp = sink.tcp
        self._udp = sink.udp
        self._other: OtherSink | None = getattr(sink, "other", None)
        self.skip_outgoing = skip_outgoing
        self.tunnels = MAX_TUNNELS if tunnels else 0
        # reassembled datagrams count as a level, so fragments inside them end too
        self.fragment_levels = MAX_TUNNELS if fragments else 0
        self._pending: dict[tuple[object, ...], _Datagram] = {}  # oldest first
        self._last_proto = -1  # the protocol of the datagram _fragment() completed last
        self._copies: list[tuple[bytes, bool]] = []  # the last SLL frames: (packet, outgoing)

    def frame(
        self, ts: float, linktype: int, buf: Buf, off: int, caplen: int, pkttype: int = 0
    ) -> None:
        """Decode one frame of ``caplen`` bytes at ``buf[off:]``."""
        st = self.stats
        st.frames += 1
        st.bytes += caplen
        end = off + caplen
        try:
            if linktype == LINK_ETHERNET and caplen >= _ETH_IPV4_TCP_LEN:
                # fast path, same checks as _ipv4 and _l4 for this shape; any other goes the long way
                etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, doff, flags = (
                    _ETH_IPV4_TCP(buf, off)
                )
                hlen = (doff >> 4) * 4
                if (
                    etype == ETH_IPV4
                    and vihl == 0x45
                    and proto == 6
                    and not frag & 0x3FFF
                    and total >= 40
                    and hlen >= 20
                ):
                    ip_end = min(end, off + 14 + total)
                    tcp = off + 34
                    if tcp + hlen <= ip_end:
                        st.ipv4 += 1
                        st.tcp += 1
                        self._tcp(
                            ts, (src, sport, dst, dport, 6), flags, seq, ack, buf, tcp + hlen,
                            ip_end - tcp - hlen,
                        )  # fmt: skip
                        return
            if linktype == LINK_RAW and caplen >= _IPV4_TCP_LEN and buf[off] == 0x45:
                # the same fast path for raw IPv4 without options
                _vihl, total, frag, proto, src, dst, sport, dport, seq, ack, doff, flags = (
                    _IPV4_TCP(buf, off)
                )
                hlen = (doff >> 4) * 4
                if proto == 6 and not frag & 0x3FFF and total >= 40 and hlen >= 20:
                    ip_end = min(end, off + total)
                    tcp = off + 20
                    if tcp + hlen <= ip_end:
                        st.ipv4 += 1
                        st.tcp += 1
                        self._tcp(
                            ts, (src, sport, dst, dport, 6), flags, seq, ack, buf, tcp + hlen,
                            ip_end - tcp - hlen,
                        )  # fmt: skip
                        return
            if linktype == LINK_ETHERNET:
                found = _ethernet(buf, off, end)
                if found is None:
                    st.malformed += 1
                    return
                etype, off = found
            elif linktype == LINK_LINUX_SLL:
                if caplen < 16:
                    st.malformed += 1
                    return
                etype = _U16(buf, off + 14)[0]
                out = _U16(buf, off)[0] == PACKET_OUTGOING
                off += 16
                if self.skip_outgoing and self._copy(out, etype, buf, off, end):
                    st.outgoing_skipped += 1
                    return
            elif linktype == LINK_LINUX_SLL2:
                if caplen < 20:
                    st.malformed += 1
                    return
                etype = _U16(buf, off)[0]
                out = buf[off + 10] == PACKET_OUTGOING
                off += 20
                if self.skip_outgoing and self._copy(out, etype, buf, off, end):
                    st.outgoing_skipped += 1
                    return
            elif linktype in (LINK_RAW, LINK_IPV4, LINK_IPV6):
                if caplen < 1:
                    st.malformed += 1
                    return
                etype = ETH_IPV4 if buf[off] >> 4 == 4 else ETH_IPV6
            elif linktype in (LINK_NULL, LINK_LOOP):
                if caplen < 4:
                    st.malformed += 1
                    return
                family = _LE32(buf, off)[0]
                if family > 0xFFFF:  # written on a big-endian host
                    family = family >> 24
                etype = ETH_IPV4 if family == 2 else ETH_IPV6
                off += 4
            elif linktype == LINK_NFLOG:
                found = _nflog(buf, off, end)
                if found is None:
                    st.malformed += 1
                    return
                off, end = found
                if off == end:  # no NFULA_PAYLOAD: a log line without the packet
                    st.other += 1
                    return
                etype = ETH_IPV4 if buf[off] >> 4 == 4 else ETH_IPV6
            else:
                st.other += 1
                return
            self._network(ts, etype, buf, off, end, 0)
        except (struct.error, IndexError):
            st.malformed += 1

    def _network(self, ts: float, etype: int, buf: Buf, off: int, end: int, depth: int) -> None:
        """What an EtherType carries: IPv4 or IPv6, also under an MPLS label stack or in a PPPoE
        session (pcapfast.c ``network`` is the same walk)."""
        st = self.stats
        if etype in ETH_MPLS:
            while True:  # labels until the one with the bottom-of-stack bit
                if end - off < 4:
                    st.malformed += 1
                    return
                off += 4
                if buf[off - 2] & 1:
                    break
            # no field names what follows the stack: an IP packet says so by its version
            version = buf[off] >> 4 if off < end else 0
            etype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
        elif etype == ETH_PPPOE:
            if end - off < 8:
                st.malformed += 1
                return
            if buf[off] != 0x11 or buf[off + 1]:  # version 1, type 1, code 0 (session data)
                st.other += 1
                return
            end = min(end, off + 6 + _U16(buf, off + 4)[0])
            off += 6
            if end - off < 2:
                st.malformed += 1
                return
            if buf[off] & 1:  # protocol field compression (RFC 1661 6.5): one byte
                proto, off = buf[off], off + 1
            else:
                proto, off = _U16(buf, off)[0], off + 2
            etype = ETH_IPV4 if proto == PPP_IPV4 else ETH_IPV6 if proto == PPP_IPV6 else 0
        if etype == ETH_IPV4:
            self._ipv4(ts, buf, off, end, depth)
        elif etype == ETH_IPV6:
            self._ipv6(ts, buf, off, end, depth)
        else:
            st.other += 1

    def _copy(self, out: bool, etype: int, buf: Buf, off: int, end: int) -> bool:
        """Is this IP packet (an SLL frame's) the second copy of one of the last SLL frames of
        the other direction? A forwarding hop changes only the TTL (hop limit) and checksum."""
        if etype == ETH_IPV4 and end - off >= 20:
            packet = bytes(buf[off : off + 8]) + bytes(buf[off + 9 : off + 10])
            packet += bytes(buf[off + 12 : end])
        elif etype == ETH_IPV6 and end - off >= 40:
            packet = bytes(buf[off : off + 7]) + bytes(buf[off + 8 : end])
        else:
            return False
        seen = self._copies
        for i, (other, was_out) in enumerate(seen):
            if was_out != out and other == packet:
                del seen[i]  # a copy pairs with one other: a third is a retransmission
                return True
        seen.append((packet, out))
        if len(seen) > COPY_WINDOW:
            del seen[0]
        return False

    def _ipv4(self, ts: float, buf: Buf, off: int, end: int, depth: int = 0) -> None:
        st = self.stats
        if end - off < 20:
            st.malformed += 1
            return
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src, dst = _IPV4(buf, off)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or end - off < ihl:
            st.malformed += 1
            return
        st.ipv4 += 1
        if ihl > 20:
            st.ipv4_options += 1
        if frag & 0x3FFF:  # MF set or a non-zero offset
            st.fragments += 1
            if depth >= self.fragment_levels:  # counted, not reassembled
                return
        # total == 0 happens on TSO super-frames; otherwise it trims Ethernet padding
        if total:
            if total < ihl:
                st.malformed += 1
                return
            end = min(end, off + total)
        if frag & 0x3FFF:
            key = (4, src, dst, proto, ident)
            whole = self._fragment(
                ts, key, proto, (frag & 0x1FFF) * 8, frag & 0x2000, buf, off + ihl, end
            )
            if whole is not None:
                self._l4(ts, proto, src, dst, whole, 0, len(whole), depth + 1)
            return
        self._l4(ts, proto, src, dst, buf, off + ihl, end, depth)

    def _ipv6(self, ts: float, buf: Buf, off: int, end: int, depth: int = 0) -> None:
        st = self.stats
        if end - off < 40:
            st.malformed += 1
            return
        vtf, plen, nxt, _hop, src, dst = _IPV6(buf, off)
        if vtf >> 28 != 6:
            st.malformed += 1
            return
        st.ipv6 += 1
        if plen:
            end = min(end, off + 40 + plen)
        self._ipv6_chain(ts, nxt, src, dst, buf, off + 40, end, depth)

    def _ipv6_chain(
        self, ts: float, nxt: int, src: bytes, dst: bytes, buf: Buf, off: int, end: int, depth: int
    ) -> None:
        """IPv6's extension headers from ``off`` on, then the transport."""
        st = self.stats
        while nxt in _IPV6_EXT or nxt == 44 or nxt == 51:
            if off + 8 > end:
                st.malformed += 1
                return
            if nxt == 44:  # fragment header
                st.fragments += 1
                if depth >= self.fragment_levels:  # counted, not reassembled
                    return
                at, ident = _U16(buf, off + 2)[0], _U32(buf, off + 4)[0]
                key = (6, src, dst, ident)
                whole = self._fragment(ts, key, buf[off], at & 0xFFF8, at & 1, buf, off + 8, end)
                if whole is not None:
                    self._ipv6_chain(
                        ts, self._last_proto, src, dst, whole, 0, len(whole), depth + 1
                    )
                return
            # AH counts 4-byte units, the others 8-byte units
            hlen = (buf[off + 1] + 2) * 4 if nxt == 51 else (buf[off + 1] + 1) * 8
            nxt = buf[off]
            off += hlen
        self._l4(ts, nxt, src, dst, buf, off, end, depth)

    def _fragment(
        self,
        ts: float,
        key: tuple[object, ...],
        proto: int,
        at: int,
        more: int,
        buf: Buf,
        off: int,
        end: int,
    ) -> bytes | None:
        """Take one fragment (``at``: where its bytes go, ``more``: not the last); the whole
        datagram's payload once every byte of it arrived (its protocol in ``_last_proto``)."""
        length = end - off
        pending = self._pending
        while pending:  # the longest waiting first: given up after FRAG_TIMEOUT
            oldest = next(iter(pending))
            if pending[oldest].first >= ts - FRAG_TIMEOUT:
                break
            del pending[oldest]
        d = pending.get(key)
        if (
            length <= 0
            or at + length > FRAG_MAX
            or (more and length % 8)
            or (
                d is not None
                and d.total >= 0
                and (at + length > d.total or (not more and at + length != d.total))
            )
        ):
            self.stats.malformed += 1
            return None
        if d is None:
            if len(pending) >= FRAG_PENDING:
                del pending[next(iter(pending))]
            d = pending[key] = _Datagram(ts)
        if not more:
            d.total = at + length
        if at == 0:
            d.proto = proto
        data, units = d.data, d.units
        u, pos, stop = at >> 3, at, at + length
        while pos < stop:  # the first copy of each unit stays
            n = min(8, stop - pos)
            if not units[u]:
                units[u] = 1
                data[pos : pos + n] = buf[off + pos - at : off + pos - at + n]
            u += 1
            pos += n
        if d.total < 0 or units.find(0, 0, (d.total + 7) >> 3) >= 0:
            return None
        del pending[key]
        self._last_proto = d.proto
        return bytes(data[: d.total])

    def _l4(
        self,
        ts: float,
        proto: int,
        src: bytes,
        dst: bytes,
        buf: Buf,
        off: int,
        end: int,
        depth: int = 0,
    ) -> None:
        st = self.stats
        if proto == 6:
            if end - off < 20:
                st.malformed += 1
                return
            sport, dport, seq, ack, doff, flags = _TCP(buf, off)
            hlen = (doff >> 4) * 4
            if hlen < 20 or off + hlen > end:
                st.malformed += 1
                return
            st.tcp += 1
            self._tcp(
                ts, (src, sport, dst, dport, 6), flags, seq, ack, buf, off + hlen, end - off - hlen
            )
        elif proto == 17:
            if end - off < 8:
                st.malformed += 1
                return
            sport, dport, ulen = _UDP(buf, off)
            st.udp += 1
            length = min(end - off, ulen) - 8 if ulen >= 8 else end - off - 8
            if (
                depth < self.tunnels
                and (dport in VXLAN_PORTS or dport == GENEVE_PORT)
                and self._overlay(ts, dport, buf, off + 8, off + 8 + max(length, 0), depth + 1)
            ):
                return
            self._udp(ts, (src, sport, dst, dport, 17), buf, off + 8, max(length, 0))
        elif depth < self.tunnels and proto == IPPROTO_IPIP:
            self._ipv4(ts, buf, off, end, depth + 1)
        elif depth < self.tunnels and proto == IPPROTO_IPV6:
            self._ipv6(ts, buf, off, end, depth + 1)
        elif depth < self.tunnels and proto == IPPROTO_GRE:
            self._gre(ts, buf, off, end, depth + 1)
        else:
            st.other += 1
            if self._other is not None:
                self._other(ts, proto, src, dst, buf, off, end - off)

    def _overlay(self, ts: float, port: int, buf: Buf, off: int, end: int, depth: int) -> bool:
        """A VXLAN or Geneve header and what it carries; False (an ordinary datagram to that
        port) when the header is not one."""
        if end - off < 8:
            return False
        if port == GENEVE_PORT:
            if buf[off] >> 6:  # version 0 only
                return False
            inner = off + 8 + (buf[off] & 0x3F) * 4
            etype = _U16(buf, off + 2)[0]
            if etype not in (ETH_TEB, ETH_IPV4, ETH_IPV6) or inner > end:
                return False
        else:  # VXLAN: the I flag, the last byte reserved
            if not buf[off] & 0x08 or buf[off + 7]:
                return False
            inner, etype = off + 8, ETH_TEB
        self._inner(ts, etype, buf, inner, end, depth)
        return True

    def _gre(self, ts: float, buf: Buf, off: int, end: int, depth: int) -> None:
        """GRE version 0 (RFC 2784/2890): the optional checksum, key and sequence words."""
        st = self.stats
        if end - off < 4:
            st.malformed += 1
            return
        flags, etype = _U16(buf, off)[0], _U16(buf, off + 2)[0]
        if flags & 0x4007:  # source routing (RFC 1701) or another version (PPTP's)
            st.other += 1
            return
        off += 4 + 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1))
        if off > end:
            st.malformed += 1
            return
        self._inner(ts, etype, buf, off, end, depth)

    def _inner(self, ts: float, etype: int, buf: Buf, off: int, end: int, depth: int) -> None:
        """The packet a tunnel carries: an Ethernet frame (``ETH_TEB``) or an IP packet."""
        st = self.stats
        if etype == ETH_TEB:
            found = _ethernet(buf, off, end)
            if found is None:
                st.malformed += 1
                return
            etype, off = found
        self._network(ts, etype, buf, off, end, depth)
