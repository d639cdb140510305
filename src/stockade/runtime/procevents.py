"""Process events from the kernel's process connector (netlink ``NETLINK_CONNECTOR``, the
``CN_IDX_PROC`` group; needs root): fork, exec and exit, each with what the kernel gives (pid,
tgid, parent). Read in batches from one socket with a large receive buffer; when the kernel drops
messages because we fell behind (``ENOBUFS``) the loss is counted, never hidden."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from stockade.model.errors import EnforcementError

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
SO_RCVBUFFORCE = 33

FORK, EXEC, EXIT = 0x1, 0x2, 0x80000000
_NL = struct.Struct("=IHHII")  # nlmsghdr
_CN = struct.Struct("=IIIIHH")  # cn_msg: idx, val, seq, ack, len, flags
_EV = struct.Struct("=IIQ")  # proc_event: what, cpu, timestamp_ns
_PAIR = struct.Struct("=ii")
_EXIT = struct.Struct("=iiIIii")  # pid, tgid, exit_code, exit_signal, parent pid, parent tgid
_HEAD = _NL.size + _CN.size + _EV.size


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """``kind`` is ``fork``, ``exec`` or ``exit``; for a fork ``pid``/``tgid`` are the child's
    and ``ppid``/``ptgid`` the parent's; for an exit ``code`` is the wait status."""

    kind: str
    pid: int
    tgid: int
    ppid: int = 0
    ptgid: int = 0
    code: int = 0


def parse(data: bytes) -> Iterator[ProcEvent]:
    """The process events in one datagram (other connector messages are skipped)."""
    off = 0
    while off + _HEAD <= len(data):
        length = _NL.unpack_from(data, off)[0]
        if length < _NL.size:
            return
        idx, val = _CN.unpack_from(data, off + _NL.size)[:2]
        body = off + _HEAD
        if idx == CN_IDX_PROC and val == CN_VAL_PROC and off + length <= len(data):
            what = _EV.unpack_from(data, off + _NL.size + _CN.size)[0]
            if what == EXEC:
                pid, tgid = _PAIR.unpack_from(data, body)
                yield ProcEvent("exec", pid, tgid)
            elif what == FORK:
                ppid, ptgid = _PAIR.unpack_from(data, body)
                pid, tgid = _PAIR.unpack_from(data, body + 8)
                yield ProcEvent("fork", pid, tgid, ppid, ptgid)
            elif what == EXIT and body + _EXIT.size <= off + length:
                pid, tgid, code, _sig, ppid, ptgid = _EXIT.unpack_from(data, body)
                yield ProcEvent("exit", pid, tgid, ppid, ptgid, code)
        off += (length + 3) & ~3


class ProcConnector:
    """A subscription to process events until :meth:`close`."""

    def __init__(self, rcvbuf: int = 16 << 20) -> None:
        self.lost = 0  # times the kernel reported dropped messages
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as exc:
            raise EnforcementError(f"process connector: {exc.strerror}") from None
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((0, CN_IDX_PROC))
            self._control(PROC_CN_MCAST_LISTEN)
        except OSError as exc:
            self.sock.close()
            why = "needs root" if exc.errno == errno.EPERM else exc.strerror
            raise EnforcementError(f"process connector: {why}") from None

    def _control(self, op: int) -> None:
        payload = struct.pack("=I", op)
        cn = _CN.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self.sock.send(_NL.pack(_NL.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, timeout: float | None) -> list[ProcEvent]:
        """The events of the next datagram and whatever else is already queued (bounded), or []
        after ``timeout`` seconds with nothing."""
        self.sock.settimeout(timeout)
        out: list[ProcEvent] = []
        try:
            out.extend(parse(self.sock.recv(65536)))
            self.sock.setblocking(False)
            for _ in range(256):
                out.extend(parse(self.sock.recv(65536)))
        except (BlockingIOError, TimeoutError):
            pass
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise EnforcementError(f"process connector: {exc.strerror}") from None
            self.lost += 1
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._control(PROC_CN_MCAST_IGNORE)
        self.sock.close()

    def __enter__(self) -> ProcConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
