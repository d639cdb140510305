"""TCP reassembly of one direction, up to a stream depth.

In-order bytes are delivered to ``on_data``; retransmissions are dropped, overlaps trimmed (the
first copy wins, as on most stacks), out-of-order segments buffered up to ``ooo_limit`` bytes and
``ooo_segments`` segments. A hole is skipped (and reported to ``on_gap``) when the buffer overflows
(either limit), when the peer acknowledges bytes the capture never saw, or when the stream is
flushed. After ``depth`` bytes only counting continues.

Held segments are kept in arrival order (``ooo``, the order decides which of two differing
overlapping copies is delivered) and, for finding them, sorted by sequence number (``_order``):
the earliest held segment and the ones a delivery makes due are found by bisection, so a capture of
many spaced segments costs a logarithm per segment, not a walk over all of them.
capture/pcapfast.c does the same, step for step.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from heapq import heappop, heappush

from stockade.network.capture.decode import Buf

MASK = 0xFFFFFFFF
# Out-of-order segments held per direction (next to the byte limit ``ooo_limit``): the count a
# hostile capture of tiny spaced segments would otherwise grow without bound. Snort's stream
# reassembly holds 2,621 by default, FreeBSD's TCP 100; 1,024 one-MSS segments are 1.5 MB, more
# than the default byte limit, so only tiny segments reach it.
OOO_SEGMENTS = 1024
HALF = 0x80000000


def seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space (negative when a is before b)."""
    d = (a - b) & MASK
    return d - 0x100000000 if d & 0x80000000 else d


class Stream:
    __slots__ = (
        "_arrivals",
        "_on_data",
        "_on_gap",
        "_order",
        "_rank",
        "buffered",
        "delivered",
        "depth",
        "fin_seq",
        "gaps",
        "head",
        "keep_head",
        "next_seq",
        "ooo",
        "ooo_limit",
        "ooo_segments",
        "overlaps",
        "past_depth",
        "retransmissions",
        "started",
    )

    def __init__(
        self,
        depth: int,
        ooo_limit: int,
        on_data: Callable[[bytes], None] | None = None,
        on_gap: Callable[[int], None] | None = None,
        *,
        keep_head: bool = True,
        ooo_segments: int = OOO_SEGMENTS,
    ) -> None:
        self.depth = depth
        self.ooo_limit = ooo_limit
        self.ooo_segments = max(1, ooo_segments)
        self._on_data = on_data
        self._on_gap = on_gap
        self.started = False
        self.next_seq = 0
        self.fin_seq = -1
        self.head = bytearray()  # the first ``depth`` bytes, for protocol detection
        self.keep_head = keep_head
        self.delivered = 0
        self.past_depth = 0  # bytes seen after the depth, counted only
        self.ooo: dict[int, bytes] = {}  # held segments by sequence number, in arrival order
        self._order: list[int] = []  # their sequence numbers, sorted (while draining: not yet due)
        self._rank: dict[int, int] = {}  # sequence number -> arrival number (its place in ``ooo``)
        self._arrivals = 0
        self.buffered = 0  # bytes held in ``ooo`` (memory accounting)
        self.gaps = 0
        self.overlaps = 0
        self.retransmissions = 0

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) & MASK
        self.started = True

    def fin(self, seq: int) -> None:
        self.fin_seq = seq & MASK

    def segment(self, seq: int, buf: Buf, off: int, length: int) -> int:
        """Take one segment; returns the change in bytes held by this stream."""
        before = self.buffered + len(self.head)
        while True:
            if self.delivered >= self.depth:
                self.past_depth += length
                break
            if not self.started:  # picked up mid-stream: start where we are
                self.next_seq = seq
                self.started = True
            rel = seq_diff(seq, self.next_seq)
            if rel < 0:
                if rel + length <= 0:
                    self.retransmissions += 1
                    break
                self.overlaps += 1
                off -= rel
                length += rel
                seq = self.next_seq
                rel = 0
            if rel == 0:
                self._deliver(bytes(buf[off : off + length]))
                if self.ooo:
                    self._drain()
                break
            old = self.ooo.get(seq)
            if self.buffered + length > self.ooo_limit or (
                old is None and len(self.ooo) >= self.ooo_segments
            ):
                # no room: give up on the hole before the earliest data held (or this segment),
                # then take the segment again (each round delivers at least one held segment)
                first = self._first_buffered()
                self._skip(seq if first is None or seq_diff(seq, first) < 0 else first)
                continue
            if old is None:
                self._rank[seq] = self._arrivals
                self._arrivals += 1
                insort(self._order, seq)
            if old is None or len(old) < length:
                self.buffered += length - (len(old) if old else 0)
                self.ooo[seq] = bytes(buf[off : off + length])  # a longer copy keeps the place
            else:
                self.retransmissions += 1
            break
        return self.buffered + len(self.head) - before

    def acked(self, ack: int) -> int:
        """The peer acknowledged up to ``ack``: bytes before it that we never saw are a gap."""
        if not self.started or self.delivered >= self.depth:
            return 0
        ahead = seq_diff(ack, self.next_seq)
        if ahead <= 0 or (self.fin_seq >= 0 and ack == ((self.fin_seq + 1) & MASK) and ahead == 1):
            return 0
        before = self.buffered + len(self.head)
        first = self._first_buffered()
        if first is not None and seq_diff(first, ack) < 0:
            self._skip(first)
        else:
            self._skip(ack)
        return self.buffered + len(self.head) - before

    def flush(self) -> int:
        """Deliver whatever is buffered, skipping holes; returns the change in held bytes."""
        before = self.buffered + len(self.head)
        while self.ooo and self.delivered < self.depth:
            self._skip_to_buffered()
        self._clear()
        return self.buffered + len(self.head) - before

    def release(self) -> int:
        """Free the head and buffers (after analysis); returns the bytes freed."""
        freed = self.buffered + len(self.head)
        self.head = bytearray()
        self.keep_head = False
        self._clear()
        return freed

    # internals

    def _deliver(self, data: bytes) -> None:
        room = self.depth - self.delivered
        if len(data) > room:
            self.past_depth += len(data) - room
            data = data[:room]
        self.next_seq = (self.next_seq + len(data)) & MASK
        self.delivered += len(data)
        if self.keep_head:
            self.head += data
        if self._on_data is not None and data:
            self._on_data(data)
        if self.delivered >= self.depth and self.ooo:
            self._clear()

    def _clear(self) -> None:
        self.ooo.clear()
        self._order.clear()
        self._rank.clear()
        self.buffered = 0

    def _drain(self) -> None:
        """Deliver the held segments a delivery or a skip made due.

        The same as walking the held segments in arrival order, delivering (trimmed) or dropping
        each one at or before ``next_seq``, and walking again while a walk delivered something:
        the due segments wait in two heaps by arrival number, those still ahead of the walk's
        position (``now``) and those behind it (``later``, the next walk's)."""
        order = self._order
        if not order or self.delivered >= self.depth:
            return
        now: list[tuple[int, int]] = []
        later: list[tuple[int, int]] = []
        at = -1  # arrival number of the segment the walk is at
        self._due(now, later, at)
        if not now:
            return  # nothing due (the usual case while a hole waits for its retransmission)
        ooo = self.ooo
        while ooo and self.delivered < self.depth:
            if not now:
                if not later:
                    break
                now, later, at = later, now, -1  # the next walk, from the start
                continue
            at, seq = heappop(now)
            del self._rank[seq]
            data = ooo.pop(seq)
            self.buffered -= len(data)
            rel = seq_diff(seq, self.next_seq)
            if rel + len(data) > 0:
                if rel < 0:
                    self.overlaps += 1
                self._deliver(data[-rel:] if rel < 0 else data)
                if ooo:
                    self._due(now, later, at)
            else:
                self.retransmissions += 1

    def _due(self, now: list[tuple[int, int]], later: list[tuple[int, int]], at: int) -> None:
        """Move the held segments at or before ``next_seq`` from ``_order`` to the walk's heaps."""
        order, rank, nxt = self._order, self._rank, self.next_seq
        while order:
            i = bisect_left(order, (nxt + HALF) & MASK)  # as _earliest
            if i == len(order):
                i = 0
            seq = order[i]
            if (seq - nxt) & MASK and not (seq - nxt) & HALF:  # seq_diff(seq, nxt) > 0
                return
            del order[i]
            r = rank[seq]
            heappush(now if r > at else later, (r, seq))

    def _earliest(self) -> int:
        """Index in ``_order`` of the segment earliest relative to ``next_seq`` (``_order`` not
        empty): sequence numbers from ``next_seq`` - 2**31 on, cyclically, are in that order."""
        i = bisect_left(self._order, (self.next_seq + HALF) & MASK)
        return 0 if i == len(self._order) else i

    def _first_buffered(self) -> int | None:
        return self._order[self._earliest()] if self._order else None

    def _skip_to_buffered(self) -> None:
        first = self._first_buffered()
        if first is not None:
            self._skip(first)

    def _skip(self, seq: int) -> None:
        missing = seq_diff(seq, self.next_seq)
        if missing <= 0:
            self._drain()
            return
        self.gaps += 1
        self.next_seq = seq & MASK
        if self._on_gap is not None:
            self._on_gap(missing)
        self._drain()
