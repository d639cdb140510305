"""Connection ends from the kernel without a verdict round trip (NFLOG).

The FINs and RSTs of connections allowed pending inspection stay in the kernel (a verdict round
trip for each would put the enforcer on the close path of every connection), yet the enforcer must
know the connection ended, or its flow (streams, DLP state) is kept until it idles out: with a new
connection per request that is thousands of flows, more memory, and garbage collections that walk
them all. The ``inspecting`` chain copies the headers of those segments to an NFLOG group (the
enforcer's queue number) and lets them pass; this module reads the copies over a netfilter netlink
socket, asynchronously: no packet ever waits for it.
"""

from __future__ import annotations

import socket
import struct

from stockade.model.errors import EnforcementError

NETLINK_NETFILTER = 12
_ULOG = 4 << 8  # NFNL_SUBSYS_ULOG
_MSG_PACKET, _MSG_CONFIG = _ULOG | 0, _ULOG | 1
_CFG_CMD, _CFG_MODE = 1, 2
_CMD_BIND, _CMD_UNBIND = 1, 2
_COPY_PACKET = 2
_PAYLOAD = 9  # NFULA_PAYLOAD
_NLMSG_ERROR = 2
_F_REQUEST, _F_ACK = 0x1, 0x4
COPY = 128  # bytes of each packet: the IP and TCP headers, no more
_HDR = struct.Struct("=IHHII")  # nlmsghdr
_ATTR = struct.Struct("=HH")


def _attr(kind: int, data: bytes) -> bytes:
    raw = _ATTR.pack(_ATTR.size + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


class EndLog:
    """The packets copied to one NFLOG group, read without blocking."""

    def __init__(self, group: int) -> None:
        self.group = group
        self._seq = 0
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise EnforcementError(f"cannot open a netfilter netlink socket: {exc}") from exc
        try:
            self._sock.bind((0, 0))
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self._config(_attr(_CFG_CMD, struct.pack("B", _CMD_BIND)))
            self._config(_attr(_CFG_MODE, struct.pack(">IBB", COPY, _COPY_PACKET, 0)))
        except OSError as exc:
            self._sock.close()
            raise EnforcementError(f"cannot bind NFLOG group {group}: {exc}") from exc
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def _config(self, attrs: bytes) -> None:
        self._seq += 1
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(self.group)) + attrs
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

    def packets(self, limit: int = 1024) -> list[bytes]:
        """The copied packets waiting on the socket (at most ``limit`` reads)."""
        out: list[bytes] = []
        for _ in range(limit):
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ENOBUFS: copies were lost; those flows idle out instead
                continue
            out += _payloads(data)
        return out

    def close(self) -> None:
        try:
            self._sock.setblocking(True)
            self._config(_attr(_CFG_CMD, struct.pack("B", _CMD_UNBIND)))
        except OSError:
            pass  # the socket goes away with its binding anyway
        self._sock.close()


def _payloads(data: bytes) -> list[bytes]:
    """The packet payloads (NFULA_PAYLOAD) of the NFLOG messages in one netlink read."""
    out = []
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _, _, _ = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            break
        if kind == _MSG_PACKET:
            pos, end = off + _HDR.size + 4, off + length  # past the nfgenmsg
            while pos + _ATTR.size <= end:
                alen, atype = _ATTR.unpack_from(data, pos)
                if alen < _ATTR.size:
                    break
                if atype & 0x3FFF == _PAYLOAD:
                    out.append(data[pos + _ATTR.size : pos + alen])
                pos += alen + (-alen % 4)
        off += length + (-length % 4)
    return out
