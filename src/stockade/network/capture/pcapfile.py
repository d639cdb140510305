"""pcap and pcapng file reader over an mmap of the file (frames are never copied).

pcap: both byte orders, microsecond and nanosecond magics. pcapng: several sections of either
byte order, interfaces with their own link type, ``if_tsresol`` and ``if_tsoffset``, Enhanced,
Simple and the obsolete Packet blocks; other blocks are skipped. A record cut short at the end
of the file ends the iteration and sets ``truncated``; structural nonsense raises
``PacketError``. A timestamp no calendar can hold (pcapng's 64-bit ticks reach year 586,000)
keeps its frame, at the previous frame's time, and is counted in ``bad_timestamps``: its bytes
are inspected like any other.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from stockade.model.errors import PacketError
from stockade.network.capture.decode import Buf

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
LINKTYPE_MASK = 0xFFFF  # libpcap's LT_LINKTYPE: bits 16-31 of the header field are not the type
MAX_RECORD = 1 << 24  # no link layer carries 16 MiB frames: a larger length means corruption
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z, the last second ``datetime`` can hold

Frame = tuple[float, int, Buf, int, int]  # ts, linktype, buffer, offset, captured length


class PcapReader:
    """``with PcapReader(path) as r: for ts, link, buf, off, n in r.frames(): ...``"""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.truncated = False
        self.format = ""
        self.bad_timestamps = 0
        self._last_ts = 0.0
        self._fh: BinaryIO | None
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise PacketError(f"cannot open: {exc.strerror}", subject=str(path)) from exc
        try:
            size = self.path.stat().st_size
            self._buf: Buf = (
                mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            )
        except (OSError, ValueError) as exc:
            self._fh.close()
            raise PacketError(f"cannot map: {exc}", subject=str(path)) from exc
        self._size = size

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<memory>") -> PcapReader:
        """A reader over a capture held in memory (an upload), never written to a file."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self.truncated = False
        self.format = ""
        self.bad_timestamps = 0
        self._last_ts = 0.0
        self._fh = None
        self._buf = data
        self._size = len(data)
        return self

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            # a caller may still hold a view; then the map goes when it is collected
            with contextlib.suppress(BufferError):
                self._buf.close()
        if self._fh is not None:
            self._fh.close()

    def _ts(self, ts: float) -> float:
        if 0.0 <= ts <= MAX_TIMESTAMP:
            self._last_ts = ts
            return ts
        self.bad_timestamps += 1
        return self._last_ts

    def _fail(self, msg: str) -> PacketError:
        return PacketError(msg, subject=str(self.path))

    def frames(self) -> Iterator[Frame]:
        buf, size = self._buf, self._size
        if size < 4:
            raise self._fail("not a pcap or pcapng file (too short)")
        magic = bytes(buf[0:4])
        if magic in PCAP_MAGICS:
            self.format = "pcap"
            return self._pcap(PCAP_MAGICS[magic])
        if magic == PCAPNG_SHB:
            self.format = "pcapng"
            return self._pcapng()
        raise self._fail("not a pcap or pcapng file (unknown magic)")

    def _pcap(self, spec: tuple[str, float]) -> Iterator[Frame]:
        order, unit = spec
        buf, size = self._buf, self._size
        if size < 24:
            raise self._fail("pcap global header is truncated")
        # the link type is the low 16 bits; libpcap writes an FCS length and its flag above them
        linktype = struct.unpack_from(order + "I", buf, 20)[0] & LINKTYPE_MASK
        rec = struct.Struct(order + "IIII").unpack_from
        off = 24
        while off < size:
            if off + 16 > size:
                self.truncated = True
                return
            sec, frac, caplen, _wire = rec(buf, off)
            if caplen > MAX_RECORD:
                raise self._fail(f"corrupt record at byte {off} (length {caplen})")
            off += 16
            if off + caplen > size:
                self.truncated = True
                return
            # 32-bit seconds plus any 32-bit fraction stay inside the calendar: no _ts() check
            yield sec + frac * unit, linktype, buf, off, caplen
            off += caplen

    def _pcapng(self) -> Iterator[Frame]:
        buf, size = self._buf, self._size
        off = 0
        order = "<"
        # linktype, seconds per tick, snaplen, seconds added (if_tsoffset)
        ifaces: list[tuple[int, float, int, int]] = []
        while off < size:
            if off + 12 > size:
                self.truncated = True
                return
            if bytes(buf[off : off + 4]) == PCAPNG_SHB:
                bom = bytes(buf[off + 8 : off + 12])
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    raise self._fail(f"bad pcapng byte-order magic at byte {off}")
                ifaces = []
            btype, blen = struct.unpack_from(order + "II", buf, off)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                raise self._fail(f"corrupt pcapng block at byte {off} (length {blen})")
            if off + blen > size:
                self.truncated = True
                return
            body, bend = off + 8, off + blen - 4
            if btype == 1:  # Interface Description
                if bend - body < 8:
                    raise self._fail(f"short interface block at byte {off}")
                link, _r, snap = struct.unpack_from(order + "HHI", buf, body)
                ifaces.append((link, *self._clock(order, body + 8, bend, snap)))
            elif btype == 6 or btype == 2:  # Enhanced Packet / obsolete Packet
                if bend - body < 20:
                    raise self._fail(f"short packet block at byte {off}")
                if btype == 6:
                    iface, hi, lo, caplen, _wire = struct.unpack_from(order + "IIIII", buf, body)
                else:
                    iface, _drops, hi, lo, caplen, _wire = struct.unpack_from(
                        order + "HHIIII", buf, body
                    )
                if iface >= len(ifaces):
                    raise self._fail(f"packet block at byte {off} names unknown interface {iface}")
                if body + 20 + caplen > bend:
                    raise self._fail(f"packet block at byte {off} overruns its block")
                link, tick, _snap, shift = ifaces[iface]
                yield self._ts(((hi << 32) | lo) * tick + shift), link, buf, body + 20, caplen
            elif btype == 3:  # Simple Packet: interface 0, no timestamp
                if not ifaces or bend - body < 4:
                    raise self._fail(f"simple packet block at byte {off} without an interface")
                wire = struct.unpack_from(order + "I", buf, body)[0]
                link, _tick, snap, _shift = ifaces[0]
                caplen = min(wire, bend - body - 4, snap or MAX_RECORD)
                yield 0.0, link, buf, body + 4, caplen
            off += blen

    def _clock(self, order: str, off: int, end: int, snap: int) -> tuple[float, int, int]:
        """(seconds per timestamp tick, snaplen, seconds added to every timestamp) from the
        ``if_tsresol`` option (default microseconds) and ``if_tsoffset`` (default none)."""
        buf = self._buf
        tick, shift = 1e-6, 0
        while off + 4 <= end:
            code, length = struct.unpack_from(order + "HH", buf, off)
            if code == 0:
                break
            if code == 9 and length >= 1 and off + 5 <= end:
                v = buf[off + 4]
                tick = float(2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v)
            elif code == 14 and length >= 8 and off + 12 <= end:
                shift = struct.unpack_from(order + "q", buf, off + 4)[0]
            off += 4 + ((length + 3) & ~3)
        return tick, snap, shift
