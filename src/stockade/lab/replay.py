"""Replay recorded traffic onto a wire: a veth pair in a network namespace of its own, frames
sent into one end arrive on the other as they were recorded. The same frames can then be captured
live several times (one sensor process against several) and compared, which a live lab cannot
give twice. Used by the sensor's fan-out tests and benchmark."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

from stockade.network.capture.live import PACKET_OUTGOING, netns
from stockade.network.capture.pcapfile import PcapReader

_SLL = struct.Struct("!HHH8sH")  # packet type, ARPHRD, address length, address, protocol
_SLL2 = struct.Struct("!HHIHBB8s")  # protocol, -, ifindex, ARPHRD, packet type, length, address
_ARPHRD_ETHER = 1
_MTU = 65535  # recorded GSO super-frames go through whole


class ReplayLink:
    """``with ReplayLink("sk1-") as link: sensor on link.capture in link.netns; link.send(f)``"""

    def __init__(self, prefix: str) -> None:
        self.netns = f"{prefix}replay"
        self.inject, self.capture = f"{prefix}rpa", f"{prefix}rpb"
        self._sock: socket.socket | None = None

    def __enter__(self) -> ReplayLink:
        self._ip("netns", "add", self.netns)
        try:
            ns = ("-n", self.netns)
            self._ip(*ns, "link", "add", self.inject, "type", "veth", "peer", "name", self.capture)
            for name in (self.inject, self.capture):
                self._ip(*ns, "link", "set", name, "mtu", str(_MTU), "up")
            with netns(self.netns):
                self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self._sock.bind((self.inject, 0))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], capture_output=True, check=True, timeout=30)

    def send(self, frames: list[bytes]) -> int:
        """Send every frame into the inject end; returns the bytes sent."""
        assert self._sock is not None
        send = self._sock.send
        return sum(send(f) for f in frames)


def wire_frames(path: Path) -> list[bytes]:
    """A capture's frames as Ethernet frames to send: Ethernet ones as they are; Linux cooked
    ones (``tcpdump -i any``, SLL and SLL2) rebuilt with their protocol, their outgoing copies left out (a
    forwarded packet is recorded in on one interface and out on another: it is sent once)."""
    out = []
    with PcapReader(path) as reader:
        for _ts, link, buf, off, caplen in reader.frames():
            frame = bytes(buf[off : off + caplen])
            if link == 1:
                out.append(frame)
            elif link == 113 and len(frame) > _SLL.size:
                kind, hatype, alen, addr, _proto = _SLL.unpack_from(frame)
                if kind == PACKET_OUTGOING or hatype != _ARPHRD_ETHER or alen != 6:
                    continue
                out.append(_ether(addr, frame[_SLL.size - 2 :]))
            elif link == 276 and len(frame) > _SLL2.size:
                proto, _, _, hatype, kind, alen, addr = _SLL2.unpack_from(frame)
                if kind == PACKET_OUTGOING or hatype != _ARPHRD_ETHER or alen != 6:
                    continue
                out.append(_ether(addr, struct.pack("!H", proto) + frame[_SLL2.size :]))
    return out


def _ether(source: bytes, typed_payload: bytes) -> bytes:
    """An Ethernet frame from the recorded source address to a fixed unicast one."""
    return b"\x02\x00\x00\x00\x00\x01" + source[:6] + typed_payload
