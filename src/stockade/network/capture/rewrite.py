"""Frames as editable bytes: where the IP header, the TCP/UDP header and the payload are, and
checksums recomputed after the payload changed (same length, so lengths and sequence numbers stay).

The link layers are the decoder's (``decode``); unlike the decoder this keeps every offset, because
the caller writes into the frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from stockade.network.capture.decode import (
    ETH_IPV4,
    ETH_IPV6,
    ETH_VLAN,
    LINK_ETHERNET,
    LINK_IPV4,
    LINK_IPV6,
    LINK_LINUX_SLL,
    LINK_LINUX_SLL2,
    LINK_LOOP,
    LINK_NULL,
    LINK_RAW,
)

_U16 = struct.Struct("!H")
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140})


@dataclass(slots=True)
class Layout:
    """Offsets into one frame. ``proto`` 6 or 17 when ``l4`` and ``payload`` are valid."""

    l3: int
    version: int
    l4: int = -1
    proto: int = -1
    payload: int = -1
    end: int = -1  # end of the IP datagram inside the frame (Ethernet padding excluded)
    fragment: bool = False
    truncated: bool = False  # the capture holds less than the IP header says


def network_offset(frame: bytes | bytearray, linktype: int) -> tuple[int, int] | None:
    """(offset of the IP header, 4 or 6), or None for anything else."""
    n = len(frame)
    if linktype == LINK_ETHERNET:
        if n < 14:
            return None
        etype, off = _U16.unpack_from(frame, 12)[0], 14
        while etype in ETH_VLAN and off + 4 <= n:
            etype, off = _U16.unpack_from(frame, off + 2)[0], off + 4
    elif linktype == LINK_LINUX_SLL:
        if n < 16:
            return None
        etype, off = _U16.unpack_from(frame, 14)[0], 16
    elif linktype == LINK_LINUX_SLL2:
        if n < 20:
            return None
        etype, off = _U16.unpack_from(frame, 0)[0], 20
    elif linktype in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        if n < 1:
            return None
        etype, off = (ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6), 0
    elif linktype in (LINK_NULL, LINK_LOOP):
        if n < 4:
            return None
        family = int.from_bytes(frame[:4], "little")
        family = family >> 24 if family > 0xFFFF else family
        etype, off = (ETH_IPV4 if family == 2 else ETH_IPV6), 4
    else:
        return None
    if etype == ETH_IPV4:
        return off, 4
    if etype == ETH_IPV6:
        return off, 6
    return None


def layout(frame: bytes | bytearray, linktype: int) -> Layout | None:
    """Where things are in ``frame``; None when it is not IP or its headers do not fit."""
    where = network_offset(frame, linktype)
    if where is None:
        return None
    off, version = where
    n = len(frame)
    if version == 4:
        if n - off < 20 or frame[off] >> 4 != 4:
            return None
        ihl = (frame[off] & 0x0F) * 4
        total = _U16.unpack_from(frame, off + 2)[0]
        if ihl < 20 or n - off < ihl or (total and total < ihl):
            return None
        out = Layout(l3=off, version=4)
        # total == 0 on TSO super-frames: the frame's length is the datagram's
        out.end = off + total if total else n
        frag = _U16.unpack_from(frame, off + 6)[0]
        out.fragment = bool(frag & 0x3FFF)
        proto, l4 = frame[off + 9], off + ihl
    else:
        if n - off < 40 or frame[off] >> 4 != 6:
            return None
        plen = _U16.unpack_from(frame, off + 4)[0]
        out = Layout(l3=off, version=6)
        out.end = off + 40 + plen if plen else n
        proto, l4 = frame[off + 6], off + 40
        while proto in _IPV6_EXT or proto in (44, 51):
            if l4 + 8 > n:
                return None
            if proto == 44:
                out.fragment = True
                break
            hlen = (frame[l4 + 1] + 2) * 4 if proto == 51 else (frame[l4 + 1] + 1) * 8
            proto, l4 = frame[l4], l4 + hlen
    if out.end > n:
        out.truncated = True
        out.end = n
    out.l4 = l4
    if out.fragment and not _first_fragment(frame, out):
        out.payload = l4  # a later fragment: no L4 header, all payload
        return out
    if proto == 6 and out.end - l4 >= 20:
        hlen = (frame[l4 + 12] >> 4) * 4
        if hlen >= 20 and l4 + hlen <= out.end:
            out.proto, out.payload = 6, l4 + hlen
    elif proto == 17 and out.end - l4 >= 8:
        out.proto, out.payload = 17, l4 + 8
    return out


def _first_fragment(frame: bytes | bytearray, lay: Layout) -> bool:
    at, offset_bits = (lay.l3 + 6, 0x1FFF) if lay.version == 4 else (lay.l4 + 2, 0xFFF8)
    value: int = _U16.unpack_from(frame, at)[0]
    return value & offset_bits == 0


def _fold(data: bytes | bytearray | memoryview) -> int:
    """Ones' complement sum of 16-bit big-endian words: the number modulo 0xFFFF (2**16 = 1)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    value = int.from_bytes(data, "big")
    r = value % 0xFFFF
    return 0xFFFF if r == 0 and value else r


def _checksum(*parts: bytes | bytearray | memoryview) -> int:
    total = sum(_fold(p) for p in parts)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_checksums(frame: bytearray, lay: Layout) -> bool:
    """Recompute the IPv4 header checksum and the TCP/UDP checksum in place.

    Returns True when a checksum changed (the capture held a partial checksum from offload, or
    the payload was rewritten). Fragments and truncated frames keep theirs: the L4 checksum covers
    bytes the frame does not hold."""
    changed = False
    if lay.version == 4:
        ihl = (frame[lay.l3] & 0x0F) * 4
        old = frame[lay.l3 + 10 : lay.l3 + 12]
        frame[lay.l3 + 10 : lay.l3 + 12] = b"\x00\x00"
        new = _U16.pack(_checksum(memoryview(frame)[lay.l3 : lay.l3 + ihl]))
        frame[lay.l3 + 10 : lay.l3 + 12] = new
        changed = old != new
    if lay.proto not in (6, 17) or lay.fragment or lay.truncated:
        return changed
    where = lay.l4 + (16 if lay.proto == 6 else 6)
    old = frame[where : where + 2]
    if lay.proto == 17 and lay.version == 4 and old == b"\x00\x00":
        return changed  # IPv4 UDP without a checksum stays without one
    length = lay.end - lay.l4
    if lay.version == 4:
        pseudo = bytes(frame[lay.l3 + 12 : lay.l3 + 20]) + struct.pack("!BBH", 0, lay.proto, length)
    else:
        pseudo = bytes(frame[lay.l3 + 8 : lay.l3 + 40]) + struct.pack("!I3xB", length, lay.proto)
    frame[where : where + 2] = b"\x00\x00"
    value = _checksum(pseudo, memoryview(frame)[lay.l4 : lay.end])
    if lay.proto == 17 and value == 0:
        value = 0xFFFF
    new = _U16.pack(value)
    frame[where : where + 2] = new
    return changed or old != new
