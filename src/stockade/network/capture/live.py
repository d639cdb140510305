"""Live capture with an AF_PACKET socket and a TPACKET_V3 memory-mapped ring.

One socket sees every interface of its network namespace; frames from interfaces not asked for
and outgoing copies (a forwarded packet leaves through the receiver's veth too) are skipped in
the loop, so each packet is counted once. The ring is read in place: the decoder unpacks headers
straight out of the mmap.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from stockade.model.errors import InputError, UsageError

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_USER = 1
ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
FANOUT_FLOW_HASH = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG

_BLOCK_HDR = struct.Struct(
    "=III"
).unpack_from  # block_status, num_pkts, offset_to_first_pkt (at +8)
_PKT_HDR = struct.Struct("=IIIIIIHH").unpack_from  # next, sec, nsec, snaplen, len, status, mac, net
_SLL = struct.Struct("=HHiHBB").unpack_from  # family, protocol, ifindex, hatype, pkttype, halen
_TPACKET3_HDRLEN = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)); sockaddr_ll follows


@contextmanager
def netns(name: str | None) -> Iterator[None]:
    """Run the block inside network namespace ``name`` (sockets opened there stay there)."""
    if not name:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"no network namespace {name!r}") from exc
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise InputError(
                f"cannot enter network namespace {name!r}: {os.strerror(ctypes.get_errno())}"
            )
        try:
            yield
        finally:
            libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER: ``struct sock_fprog`` holds the instruction count and a pointer."""
    if not program or len(program) % 8:
        raise UsageError("a BPF program is a non-empty array of 8-byte instructions")
    insns = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(insns))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class Ring:
    """``with Ring(["vh-a", "vh-b"], netns="sk-node") as r: r.run(decoder.frame, duration=5)``"""

    def __init__(
        self,
        interfaces: list[str] | None,
        *,
        namespace: str | None = None,
        block_size: int = 1 << 20,
        blocks: int = 32,
        timeout_ms: int = 50,
        bpf: bytes | None = None,
        keep_outgoing: bool = False,
        fanout: int | None = None,
    ) -> None:
        """``bpf``: a classic BPF program (``struct sock_filter`` array) the kernel applies before
        the ring is set up, so no unfiltered frame reaches it. ``keep_outgoing``: deliver frames
        leaving the interfaces too (both directions of one veth). ``fanout``: join this
        ``PACKET_FANOUT`` group (0: a new one with an id the kernel picks, then in
        ``fanout_id``); the kernel hands each frame to one ring of the group by the symmetric flow
        hash of its headers (IP fragments reassembled first), so both directions of a connection
        reach the same ring."""
        self.stats_packets = 0
        self.stats_drops = 0
        self.frames = 0
        with netns(namespace):
            try:
                self.sock = socket.socket(
                    socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
                )
            except PermissionError as exc:
                raise UsageError("live capture needs root (CAP_NET_RAW)") from exc
            try:
                self.ifindexes = self._indexes(interfaces)
                if bpf is not None:
                    _attach_filter(self.sock, bpf)
                self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
                frame = 1 << 11
                req = struct.pack(
                    "=IIIIIII",
                    block_size,
                    blocks,
                    frame,
                    block_size * blocks // frame,
                    timeout_ms,
                    0,
                    0,
                )
                self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                self.ring = mmap.mmap(
                    self.sock.fileno(),
                    block_size * blocks,
                    mmap.MAP_SHARED,
                    mmap.PROT_READ | mmap.PROT_WRITE,
                )
                self.fanout_id = None if fanout is None else self._join(fanout)
            except OSError as exc:
                self.sock.close()
                raise InputError(f"cannot set up the capture ring: {exc}") from exc
        self.block_size = block_size
        self.blocks = blocks
        self.timeout_ms = timeout_ms
        self.keep_outgoing = keep_outgoing
        self._block = 0

    def _join(self, group: int) -> int:
        """Join fanout group ``group`` after the ring is set up (no frame reaches a socket of the
        group before it can hold it); returns the group's id."""
        if not 0 <= group <= 0xFFFF:
            raise UsageError(f"fanout group {group} is outside 0-65535")
        mode = FANOUT_FLOW_HASH | (PACKET_FANOUT_FLAG_UNIQUEID if group == 0 else 0)
        self.sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", group | mode << 16))
        (joined,) = struct.unpack("=I", self.sock.getsockopt(SOL_PACKET, PACKET_FANOUT, 4))
        return int(joined) & 0xFFFF

    @staticmethod
    def _indexes(interfaces: list[str] | None) -> frozenset[int] | None:
        if not interfaces:
            return None
        out = set()
        for name in interfaces:
            try:
                out.add(socket.if_nametoindex(name))
            except OSError as exc:
                raise UsageError(f"no interface {name!r}") from exc
        return frozenset(out)

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._read_stats()
        self.release()

    def release(self) -> None:
        """Close this process's handle without reading the counters (the kernel resets them on
        every read): a forked sensor worker drops the rings of the others this way."""
        with suppress(BufferError):
            self.ring.close()
        self.sock.close()

    def _read_stats(self) -> None:
        try:
            packets, drops, _freeze = struct.unpack(
                "=III", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            )
        except OSError:
            return
        # the kernel resets the counters on every read
        self.stats_packets += packets
        self.stats_drops += drops

    def run(
        self,
        frame: Callable[[float, int, mmap.mmap, int, int], None],
        *,
        duration: float | None = None,
        count: int | None = None,
        stop: Callable[[], bool] | None = None,
        idle: Callable[[], None] | None = None,
    ) -> int:
        """Hand frames to ``frame(ts, linktype, buf, off, caplen)`` until ``duration`` seconds
        pass, ``count`` frames were delivered or ``stop()`` is true; returns the number delivered.
        ``idle()`` runs whenever the ring is empty, before waiting for the next block (the flow
        table expires idle flows then; a sensor worker sends its finished records then, so the
        last ones of a burst never wait out the poll timeout)."""
        deadline = time.monotonic() + duration if duration else None
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR)
        ring, bsize, want = self.ring, self.block_size, self.ifindexes
        skip = -1 if self.keep_outgoing else PACKET_OUTGOING
        delivered = 0
        draining: float | None = None
        while True:
            if count is not None and delivered >= count:
                break
            now = time.monotonic()
            if draining is None and (
                (deadline is not None and now >= deadline) or (stop is not None and stop())
            ):
                # the kernel retires a partly filled block after timeout_ms: wait for it once
                draining = now + 3 * self.timeout_ms / 1000
            if draining is not None and now >= draining:
                break
            base = self._block * bsize
            status, npkts, first = _BLOCK_HDR(ring, base + 8)
            if not status & TP_STATUS_USER:
                if idle is not None:
                    idle()
                poller.poll(20 if draining is not None else 100)
                continue
            off = base + first
            for _ in range(npkts):
                nxt, sec, nsec, snap, _wire, _st, mac, _net = _PKT_HDR(ring, off)
                _fam, _proto, ifindex, hatype, pkttype, _halen = _SLL(ring, off + _TPACKET3_HDRLEN)
                if pkttype != skip and (want is None or ifindex in want):
                    # ARPHRD_NONE (tun, wireguard) carries bare IP; the rest here is Ethernet-like
                    frame(sec + nsec * 1e-9, 101 if hatype == 65534 else 1, ring, off + mac, snap)
                    delivered += 1
                off += nxt
            ring[base + 8 : base + 12] = b"\x00\x00\x00\x00"  # hand the block back to the kernel
            self._block = (self._block + 1) % self.blocks
        self.frames += delivered
        self._read_stats()
        return delivered
