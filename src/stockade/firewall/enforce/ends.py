"""Connection ends and clean segments from the kernel without a verdict round trip (NFLOG).

The FINs and RSTs of connections allowed pending inspection stay in the kernel (a verdict round
trip for each would put the enforcer on the close path of every connection), yet the enforcer must
know the connection ended, or its flow (streams, DLP state) is kept until it idles out: with a new
connection per request that is thousands of flows, more memory, and garbage collections that walk
them all. The ``inspecting`` chain copies the headers of those segments to an NFLOG group (the
enforcer's queue number) and lets them pass; this module reads the copies over a netfilter netlink
socket, asynchronously: no packet ever waits for it.

The same socket reads a second group: whole copies of the clean segments of connections whose
verdict is final but for DLP (clean.py, nft.copy_group), which passed at once; the enforcer reads
them as it reads queued segments, in the order the kernel copied them, so that the sensors and
the streams see every byte.
"""

from __future__ import annotations

import socket
import struct

from stockade.model.errors import EnforcementError

NETLINK_NETFILTER = 12
_ULOG = 4 << 8  # NFNL_SUBSYS_ULOG
_MSG_PACKET, _MSG_CONFIG = _ULOG | 0, _ULOG | 1
_CFG_CMD, _CFG_MODE, _CFG_QTHRESH = 1, 2, 5  # NFULA_CFG_CMD, _MODE, _QTHRESH
_SO_RCVBUFFORCE = 33  # socket.SO_RCVBUFFORCE is not in every Python build
_CMD_BIND, _CMD_UNBIND = 1, 2
_COPY_PACKET = 2
_MARK = 2  # NFULA_MARK
_PAYLOAD = 9  # NFULA_PAYLOAD
_NLMSG_ERROR = 2
_F_REQUEST, _F_ACK = 0x1, 0x4
COPY = 128  # bytes of each end: the IP and TCP headers, no more
WHOLE = 0xFFFF  # bytes of each clean segment: all of it
_HDR = struct.Struct("=IHHII")  # nlmsghdr
_ATTR = struct.Struct("=HH")


def _attr(kind: int, data: bytes) -> bytes:
    raw = _ATTR.pack(_ATTR.size + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


class EndLog:
    """The packets copied to one NFLOG group (the ends), and to a second one (whole clean
    segments) when ``copies`` is given, read without blocking."""

    @classmethod
    def whole(cls, group: int) -> EndLog:
        """A socket for one group of whole clean segments alone (the compiled loop reads it)."""
        return cls(group, whole=True)

    def __init__(self, group: int, copies: int | None = None, *, whole: bool = False) -> None:
        self.group = group
        self.copies = copies
        self.lost = 0  # reads that found the socket had overflowed: copies were lost
        self._seq = 0
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise EnforcementError(f"cannot open a netfilter netlink socket: {exc}") from exc
        try:
            self._sock.bind((0, 0))
            # room for the clean segments' copies between two reads (the compiled loop lets
            # them wait while they keep coming): past net.core.rmem_max where allowed (root)
            room = 8 << 20 if copies or whole else 1 << 20
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, room)
            except OSError:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, room)
            self._config(group, _attr(_CFG_CMD, struct.pack("B", _CMD_BIND)))
            size = WHOLE if whole else COPY
            self._config(group, _attr(_CFG_MODE, struct.pack(">IBB", size, _COPY_PACKET, 0)))
            if whole:
                self._config(group, _attr(_CFG_QTHRESH, struct.pack(">I", 1)))
        except OSError as exc:
            self._sock.close()
            raise EnforcementError(f"cannot bind NFLOG group {group}: {exc}") from exc
        if copies is not None:
            try:
                self._config(copies, _attr(_CFG_CMD, struct.pack("B", _CMD_BIND)))
                self._config(copies, _attr(_CFG_MODE, struct.pack(">IBB", WHOLE, _COPY_PACKET, 0)))
                # each copy is sent at once (the kernel's default holds up to 100 for a second):
                # the enforcer reads it before the later segments of its direction are judged
                self._config(copies, _attr(_CFG_QTHRESH, struct.pack(">I", 1)))
            except OSError as exc:
                self.close()
                raise EnforcementError(f"cannot bind NFLOG group {copies}: {exc}") from exc
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def _config(self, group: int, attrs: bytes) -> None:
        self._seq += 1
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group)) + attrs
        flags = _F_REQUEST | _F_ACK
        self._sock.settimeout(2.0)
        self._sock.send(_HDR.pack(_HDR.size + len(body), _MSG_CONFIG, flags, self._seq, 0) + body)
        while True:
            reply = self._sock.recv(65536)
            _, kind, _, seq, _ = _HDR.unpack_from(reply)
            if kind == _NLMSG_ERROR and seq == self._seq:
                (errno,) = struct.unpack_from("=i", reply, _HDR.size)
                if errno:
                    raise OSError(-errno, f"NFLOG configuration refused (errno {-errno})")
                return

    def packets(self, limit: int = 1024) -> list[tuple[int, int, bytes]]:
        """The copied packets waiting on the socket, in the order the kernel copied them: (group,
        packet mark, packet); at most ``limit`` reads."""
        out: list[tuple[int, int, bytes]] = []
        for _ in range(limit):
            try:
                data = self._sock.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ENOBUFS: copies were lost (counted); ended flows idle out instead
                self.lost += 1
                continue
            out += _payloads(data)
        return out

    def close(self) -> None:
        try:
            self._sock.setblocking(True)
            for group in (self.group, self.copies):
                if group is not None:
                    self._config(group, _attr(_CFG_CMD, struct.pack("B", _CMD_UNBIND)))
        except OSError:
            pass  # the socket goes away with its binding anyway
        self._sock.close()


def _payloads(data: bytes) -> list[tuple[int, int, bytes]]:
    """(group, NFULA_MARK, NFULA_PAYLOAD) of the NFLOG messages in one netlink read."""
    out = []
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _, _, _ = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            break
        if kind == _MSG_PACKET and length >= _HDR.size + 4:
            (group,) = struct.unpack_from(">H", data, off + _HDR.size + 2)  # nfgenmsg res_id
            mark, payload = 0, None
            pos, end = off + _HDR.size + 4, off + length  # past the nfgenmsg
            while pos + _ATTR.size <= end:
                alen, atype = _ATTR.unpack_from(data, pos)
                if alen < _ATTR.size:
                    break
                if atype & 0x3FFF == _PAYLOAD:
                    payload = data[pos + _ATTR.size : pos + alen]
                elif atype & 0x3FFF == _MARK and alen >= _ATTR.size + 4:
                    (mark,) = struct.unpack_from(">I", data, pos + _ATTR.size)
                pos += alen + (-alen % 4)
            if payload is not None:
                out.append((group, mark, payload))
        off += length + (-length % 4)
    return out
